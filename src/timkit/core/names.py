"""Name resolution of the local federation, which has no DNS: a shared route file.

The runtime keeps one JSON file (``<data>/run/names.json``) mapping Matrix server names to
the loopback address that serves them::

    {"praxis-sonnenschein.tim.test": "127.0.0.1:8481", "klinikum-nord.tim.test": "127.0.0.1:8482"}

Writers (the runtime, when a Messenger-Service is added or removed) change it with
:meth:`NameTable.set` and :meth:`NameTable.remove`: read-modify-write under an exclusive
``flock`` on ``<file>.lock``, then an atomic replace (temporary file + ``rename``), so a
reader never sees a half-written file. Readers (the forward proxies, the FHIR-Proxy) call
:meth:`NameTable.resolve`, which re-reads the file when its inode, mtime or size changed (one
``stat`` per call, or at most one per ``check_interval`` seconds) and falls back to the static
routes from the reader's own configuration. Names are case-insensitive (stored lower-case).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from timkit.core.errors import Codes, TimkitError

logger = logging.getLogger(__name__)


def check_target(target: str) -> str:
    """Validate a route target ``host:port`` (``[v6]:port`` too); return it unchanged.

    Raises:
        ValueError: naming the target when it has no host or no valid port.
    """
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"route target must be 'host:port', got {target!r}")
    return target


def check_routes(routes: dict[str, str]) -> dict[str, str]:
    """Validate a static route table; return it with lower-case names.

    Raises:
        ValueError: naming the route whose target is not ``host:port``.
    """
    for name, target in routes.items():
        try:
            check_target(target)
        except ValueError:
            raise ValueError(f"route for {name!r} must be 'host:port', got {target!r}") from None
    return {name.lower(): target for name, target in routes.items()}


Routes = Annotated[dict[str, str], AfterValidator(check_routes)]
"""A config field holding static routes (server name → ``host:port``), checked on load."""


def split_target(target: str) -> tuple[str, int]:
    """``host:port`` → (host without IPv6 brackets, port); the target must be valid."""
    host, _, port = check_target(target).rpartition(":")
    return host.strip("[]"), int(port)


_Signature = tuple[int, int, int]


class NameTable:
    """Routes from the file ``path`` (when given) in front of the static ``routes``.

    Args:
        path: the route file; a missing file is an empty table. ``None``: static routes only.
        routes: static routes (server name → ``host:port``), used for names the file lacks.
        check_interval: minimum seconds between two ``stat`` calls on the file (0: every call).
        clock: monotonic seconds (a test seam).

    A file that cannot be parsed is logged and ignored: the last good table stays in use.
    """

    def __init__(
        self,
        path: Path | None,
        routes: Mapping[str, str] | None = None,
        *,
        check_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._static = {name.lower(): check_target(t) for name, t in (routes or {}).items()}
        self._check_interval = check_interval
        self._clock = clock
        self._checked_at: float | None = None
        self._signature: _Signature | None = None
        self._dynamic: dict[str, str] = {}

    @property
    def path(self) -> Path | None:
        """The route file, if any."""
        return self._path

    def resolve(self, name: str) -> str | None:
        """``host:port`` serving ``name``: the file's entry, else the static route, else None."""
        key = name.lower()
        self._refresh()
        return self._dynamic.get(key) or self._static.get(key)

    def routes(self) -> dict[str, str]:
        """Every route currently known (file entries override static ones)."""
        self._refresh()
        return {**self._static, **self._dynamic}

    def _refresh(self) -> None:
        if self._path is None:
            return
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._check_interval:
            return
        self._checked_at = now
        try:
            st = self._path.stat()
        except FileNotFoundError:
            self._signature, self._dynamic = None, {}
            return
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._signature:
            return
        try:
            self._dynamic = _parse(self._path.read_bytes())
        except FileNotFoundError:
            self._signature, self._dynamic = None, {}
            return
        except ValueError as e:
            logger.warning("ignoring route file %s: %s", self._path, e)
        self._signature = signature

    # --- writers -------------------------------------------------------------------------

    def set(self, name: str, target: str) -> None:
        """Route ``name`` to ``target`` (``host:port``) in the file, atomically.

        Raises:
            TimkitError: 400 when ``target`` is not ``host:port``; 500 without a file.
        """
        try:
            check_target(target)
        except ValueError as e:
            raise TimkitError(400, Codes.INVALID_PARAM, str(e)) from None
        with self._locked() as table:
            table[name.lower()] = target

    def remove(self, name: str) -> bool:
        """Drop ``name`` from the file; whether it was there."""
        with self._locked() as table:
            return table.pop(name.lower(), None) is not None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        """The file's table under an exclusive lock; written back atomically when changed."""
        if self._path is None:
            raise TimkitError(500, Codes.UNKNOWN, "this name table has no route file to write")
        path = self._path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    before = _parse(path.read_bytes())
                except FileNotFoundError:
                    before = {}
                except ValueError as e:
                    logger.warning("replacing unreadable route file %s: %s", path, e)
                    before = {}
                table = dict(before)
                yield table
                if table != before or not path.exists():
                    _write_atomically(path, table)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._checked_at = None


def _parse(data: bytes) -> dict[str, str]:
    """The route file's table; ValueError when it is not ``{name: "host:port"}``."""
    document = json.loads(data) if data.strip() else {}
    if not isinstance(document, dict):
        raise ValueError("the route file must hold a JSON object")
    table: dict[str, str] = {}
    for name, target in document.items():
        if not isinstance(target, str):
            raise ValueError(f"route for {name!r} must be a string")
        table[name.lower()] = check_target(target)
    return table


def _write_atomically(path: Path, table: Mapping[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(dict(sorted(table.items())), fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
