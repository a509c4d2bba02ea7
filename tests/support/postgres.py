"""A throwaway PostgreSQL server for tests: its own cluster, a free port, trust auth on loopback.

The binaries come from the system (``scripts/test-deps`` installs them where missing). When
the tests run as root, the server runs as the ``postgres`` user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]

from tests.support.wait import wait_until
from timkit.core.process import free_port

_PR_SET_PDEATHSIG = 1


def _bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL is not installed; run scripts/test-deps")


def _demote() -> Callable[[], None] | None:
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam("postgres")

    def run_as_postgres() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return run_as_postgres


@dataclass(frozen=True)
class PostgresServer:
    """A running server; ``dsn(db)`` names a database on it."""

    port: int

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database as Synapse requires it (UTF8, C collation); returns its DSN."""
        conn = psycopg2.connect(self.dsn("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C' "
                    "LC_CTYPE 'C' TEMPLATE template0"
                )
        finally:
            conn.close()
        return self.dsn(name)


def _server_preexec(demote: Callable[[], None] | None) -> Callable[[], None]:
    """Drop to the postgres user, then die (fast shutdown) with the test process.

    A test run killed outright must not leave a cluster running queries behind; the
    parent-death signal is set after the user change, which would otherwise clear it.
    """

    def preexec() -> None:
        if demote is not None:
            demote()
        name = ctypes.util.find_library("c")
        if name is not None:
            ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)

    return preexec


def _wait_ready(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    def ready() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            psycopg2.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    wait_until(ready, "PostgreSQL to accept connections", timeout=60)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh cluster in a temporary directory; stop and remove it afterwards."""
    bindir = _bindir()
    demote = _demote()
    root = Path(tempfile.mkdtemp(prefix="timkit-pg-"))
    if demote is not None:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    port = free_port()

    def run(*argv: str) -> None:
        subprocess.run(
            argv, check=True, capture_output=True, preexec_fn=demote, cwd=root, timeout=120
        )

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        log = (root / "log").open("ab")
        server = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_server_preexec(demote),
            cwd=root,
        )
        log.close()  # the server holds its own copy of the descriptor
        try:
            _wait_ready(server, port, root / "log")
            yield PostgresServer(port)
        finally:
            server.send_signal(signal.SIGINT)  # fast shutdown: ends every backend
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
