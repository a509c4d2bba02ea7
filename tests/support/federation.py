"""Boot a local federation with the real ``timkit`` CLI, on free ports in a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from timkit.core.federation_list import load_anchors, verify_list
from timkit.core.process import free_port
from timkit.runtime.config import load_config
from timkit.runtime.layout import Layout

LOG_TAIL = 30  # lines of each log a failed ``up`` reports
DOMAINS = ("praxis-sonnenschein.tim.test", "klinikum-nord.tim.test", "apotheke-am-markt.tim.test")


def write_config(directory: Path, services: int, *, database: list[str] | None = None) -> Path:
    """Write a ``timkit.toml`` for ``services`` Messenger-Services on free ports."""
    entries = []
    for i in range(services):
        entry: dict[str, Any] = {
            "domain": DOMAINS[i],
            "organisation": f"Test organisation {i}",
            "port": free_port(),
            "forward_proxy_port": free_port(),
        }
        if database and database[i] != "sqlite":
            entry["database"] = database[i]
        entries.append(entry)
    config = {
        "data_dir": "var",
        "runtime": {"startup_timeout": 120.0, "log_level": "INFO", "control_port": free_port()},
        "directory": {"port": free_port(), "proxy_port": free_port()},
        "idp": {"port": free_port()},
        "mailbox": {"smtp_port": free_port(), "http_port": free_port()},
        "registration": {"port": free_port()},
        "push": {
            "port": free_port(),
            "receiver_port": free_port(),
            "apns_port": free_port(),
        },
        "messenger_services": entries,
    }
    path = directory / "timkit.toml"
    path.write_text(tomli_w.dumps(config), "utf-8")
    return path


def timkit(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``timkit --config <config> <args>`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "timkit", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=180,
    )


class UpFailed(RuntimeError):
    """``timkit up`` exited non-zero; the message holds its output and the tail of every log."""

    def __init__(self, config: Path, up: subprocess.CompletedProcess[str]) -> None:
        parts = [
            f"timkit up exited {up.returncode} for {config}",
            f"-- stdout:\n{up.stdout}",
            f"-- stderr:\n{up.stderr}",
        ]
        logs = Layout(load_config(config).data_dir).logs
        for log in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            tail = log.read_text("utf-8", errors="replace").splitlines()[-LOG_TAIL:]
            parts.append(f"-- last {len(tail)} lines of {log}:\n" + "\n".join(tail))
        super().__init__("\n".join(parts))


@contextmanager
def running(config: Path) -> Iterator[Federation]:
    """The federation of ``config``, started by ``timkit up`` and stopped by ``timkit down``.

    ``down`` runs however the block ends, also when ``up`` fails half-way (some processes
    already started) or times out. A failed ``up`` raises :class:`UpFailed` carrying its output
    and the logs of the data directory. After a block that ended normally ``down`` must
    succeed; after a failure its own failure is ignored so that the first error is reported.

    Raises:
        UpFailed: ``timkit up`` exited non-zero.
    """
    try:
        up = timkit(config, "up", check=False)
        if up.returncode != 0:
            raise UpFailed(config, up)
        yield Federation(config)
    except BaseException:
        timkit(config, "down", check=False)
        raise
    timkit(config, "down")


@dataclass
class Federation:
    """A running local federation started by ``timkit up``."""

    config: Path

    def status(self) -> dict[str, Any]:
        """``timkit status --json``."""
        return dict(json.loads(timkit(self.config, "status", "--json").stdout))

    @property
    def data_dir(self) -> Path:
        return Path(self.status()["data_dir"])

    @property
    def portal_url(self) -> str:
        """The Registrierungs-Dienst's base URL."""
        return str(self.status()["portal_url"])

    def component(self, kind: str) -> dict[str, Any]:
        """The one supervised component of ``kind`` (e.g. ``registration``, ``idp``)."""
        (found,) = [c for c in self.status()["components"] if c["kind"] == kind]
        return dict(found)

    def service_components(self, domain: str) -> list[dict[str, Any]]:
        """The supervised components of the Messenger-Service ``domain`` (``…@domain``)."""
        components = self.status()["components"]
        return [dict(c) for c in components if str(c["name"]).endswith(f"@{domain}")]

    @property
    def ca_cert(self) -> str:
        return str(self.status()["ca_cert"])

    def client_url(self, domain: str) -> str:
        """The client URL of the service ``domain``."""
        for service in self.status()["services"]:
            if service["domain"] == domain:
                return str(service["client_url"])
        raise KeyError(domain)

    def add_user(self, domain: str, localpart: str, password: str) -> str:
        """Create a user via ``timkit user add``; returns the MXID."""
        out = timkit(self.config, "user", "add", domain, localpart, "--password", password)
        return str(json.loads(out.stdout)["mxid"])

    async def served_domains(self, http: httpx.AsyncClient) -> list[str]:
        """The domains of the federation list the RD serves its proxies, its JWS verified
        against the local CA (``http`` trusts that CA)."""
        layout = Layout(self.data_dir)
        token = layout.proxies_token.read_text("utf-8").strip()
        response = await http.get(
            f"{self.portal_url}/federation", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/jose")
        anchors = load_anchors([layout.ca_cert])
        verified = verify_list(response.content, anchors, "BP256R1", now=datetime.now(UTC))
        return [entry.domain for entry in verified.entries]

    def pids(self) -> list[int]:
        """Pids of the supervisor and every component."""
        status = self.status()
        pids = [c["pid"] for c in status["components"] if c["pid"]]
        return [status["supervisor_pid"], *pids] if status["supervisor_pid"] else pids
