"""A throwaway PostgreSQL server for tests: its own cluster, a free port, trust auth on loopback.

The binaries come from the system (``scripts/test-deps`` installs them where missing). When
the tests run as root, the server runs as the ``postgres`` user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]

from tests.support.process import child_setup, stop, wait_ready
from timkit.core.process import free_port


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


def _accepts(port: int) -> bool:
    try:
        psycopg2.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres").close()
    except psycopg2.OperationalError:
        return False
    return True


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh cluster in a temporary directory; stop and remove it afterwards."""
    bindir = _bindir()
    user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="timkit-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    port = free_port()

    def run(*argv: str) -> None:
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            preexec_fn=child_setup(user),
            cwd=root,
            timeout=120,
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
            # a run killed outright leaves no cluster running queries: SIGINT is fast shutdown
            preexec_fn=child_setup(user, signal.SIGINT),
            cwd=root,
        )
        log.close()  # the server holds its own copy of the descriptor
        try:
            wait_ready(server, "PostgreSQL", lambda: _accepts(port), root / "log", timeout=60)
            yield PostgresServer(port)
        finally:
            stop(server, signal.SIGINT, timeout=60)  # fast shutdown: ends every backend
    finally:
        shutil.rmtree(root, ignore_errors=True)
