"""Configuration of the FHIR-Directory (``python -m timkit.directory``).

See ``config/directory.sample.toml``; every key has a default so the local run needs none.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from timkit.core.config import StrictModel


class DirectoryConfig(StrictModel):
    """Top level of the directory's TOML file.

    Attributes:
        bind: listen address. Keep it on loopback: clients reach the directory only through
            the FHIR-Proxy.
        port: listen port.
        database: ``sqlite:///<path>`` (embedded, default) or a PostgreSQL URL.
        base_url: public base URL used in ``fullUrl`` and paging links; empty = derived
            from each request.
        seed_files: Bundles or NDJSON files loaded (idempotently, by id) at start-up.
        token_file: file (mode 0600) holding the bearer token every request but ``/health``
            must carry; the FHIR-Proxy's ``upstream_token_file`` names the same secret. The
            directory does not start without it (at least 32 characters).
        processes: serving processes sharing the port; use the number of CPUs in production.
        workers: threads per process serving database work.
        log_level: Python log level.
    """

    bind: str = "127.0.0.1"
    port: int = Field(default=8490, ge=0, le=65535)
    database: str = "sqlite:///var/directory/directory.db"
    base_url: str = ""
    seed_files: tuple[Path, ...] = ()
    token_file: Path = Path("var/fhir-directory/token")
    processes: int = Field(default=1, ge=1, le=64)
    workers: int = Field(default=8, ge=1, le=64)
    log_level: str = "INFO"
