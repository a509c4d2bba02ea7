"""One small database layer for SQLite (embedded default) and PostgreSQL (production).

Components write SQL once, with ``?`` placeholders, and run it on either engine::

    db = Database.open("sqlite:///var/directory.db")   # or "postgresql://user@host/db"
    db.migrate("directory", MIGRATIONS)                # numbered, applied once, in order
    with db.write() as tx:                             # one writer; commit or roll back whole
        tx.execute("INSERT INTO t VALUES (?, ?)", (1, "a"))
    with db.read() as cur:                             # many readers (WAL / pool)
        rows = cur.execute("SELECT * FROM t").fetchall()

Contracts:

* Every ``write()`` block is one transaction: it commits when the block ends normally and
  rolls back on any exception, so no half-written state is ever visible.
* Writers are serialised in-process (a lock), the one-writer model of the directory.
* Each thread gets its own SQLite connection; PostgreSQL connections come from a pool.
* Migrations are ``(number, name, {"sqlite": sql, "postgresql": sql})``; the applied numbers
  are kept per component in ``schema_migrations``. A missing or reordered number is an error.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from timkit.core.errors import ConfigError

Dialect = Literal["sqlite", "postgresql"]


class Cursor(Protocol):
    """The DB-API cursor subset timkit uses (sqlite3 and psycopg cursors both satisfy it)."""

    @property
    def rowcount(self) -> int:
        """Rows affected by the last statement."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any:
        """Run one statement."""

    def executemany(self, sql: str, params: Any, /) -> Any:
        """Run one statement for each parameter tuple."""

    def fetchone(self) -> Any:
        """Next row or ``None``."""

    def fetchall(self) -> list[Any]:
        """All remaining rows."""


@dataclass(frozen=True)
class Migration:
    """One numbered schema step of a component, with SQL per dialect."""

    number: int
    name: str
    sql: Mapping[Dialect, str]


class _PgCursor:
    """Adapts a psycopg cursor to ``?`` placeholders."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _PgCursor:
        if params:
            self._cursor.execute(_pg_sql(sql), params)
        else:
            self._cursor.execute(sql)
        return self

    def executemany(self, sql: str, params: Any) -> _PgCursor:
        self._cursor.executemany(_pg_sql(sql), params)
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())


def _pg_sql(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s`` (timkit SQL never has a literal ``?`` or ``%``)."""
    return sql.replace("%", "%%").replace("?", "%s")


class Database:
    """A SQLite file or a PostgreSQL database; see the module docstring for the contract."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        self.dialect: Dialect
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._pool: Any = None
        self._sqlite_connections: list[sqlite3.Connection] = []
        self._functions: list[tuple[str, int, Callable[..., Any]]] = []
        self._connections_lock = threading.Lock()
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self.path = Path(url.removeprefix("sqlite:///"))
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif url.startswith(("postgresql://", "postgres://")):
            from psycopg_pool import ConnectionPool

            self.dialect = "postgresql"
            self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True)
        else:
            raise ConfigError(f"unsupported database URL {url!r}", path="database")

    @classmethod
    def open(cls, url: str, *, pool_size: int = 8) -> Database:
        """Open ``sqlite:///<path>`` or ``postgresql://…``."""
        return cls(url, pool_size=pool_size)

    def close(self) -> None:
        """Close every connection this object opened."""
        if self._pool is not None:
            self._pool.close()
        with self._connections_lock:
            for connection in self._sqlite_connections:
                connection.close()
            self._sqlite_connections.clear()
        self._local = threading.local()

    def sqlite_function(self, name: str, arity: int, function: Callable[..., Any]) -> None:
        """Register a deterministic SQL function on every SQLite connection (no-op on PG).

        Call before the first query; PostgreSQL components define theirs in a migration.
        """
        self._functions.append((name, arity, function))

    def _sqlite(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            for pragma in (
                "journal_mode=WAL",
                "synchronous=NORMAL",
                "foreign_keys=ON",
                "cache_size=-262144",
                "mmap_size=8589934592",
                "temp_store=MEMORY",
            ):
                connection.execute(f"PRAGMA {pragma}")
            for name, arity, function in self._functions:
                connection.create_function(name, arity, function, deterministic=True)
            self._local.connection = connection
            with self._connections_lock:
                self._sqlite_connections.append(connection)
        return connection

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """A cursor for reads; SQLite readers see the last committed state (WAL)."""
        if self._pool is not None:
            with self._pool.connection() as connection:
                connection.autocommit = True
                yield _PgCursor(connection.cursor())
            return
        yield self._sqlite().cursor()

    @contextmanager
    def write(self) -> Iterator[Cursor]:
        """One serialised write transaction: commit on success, roll back on any error."""
        with self._write_lock:
            if self._pool is not None:
                with self._pool.connection() as connection:
                    connection.autocommit = False
                    with connection.transaction():
                        yield _PgCursor(connection.cursor())
                return
            connection = self._sqlite()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection.cursor()
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Tune this thread's connection for a bulk load; restored afterwards.

        SQLite checkpoints the WAL every 100,000 pages instead of every 1,000, so pages
        rewritten by many consecutive transactions reach the database file once. Durability
        is unchanged (``synchronous=NORMAL``). No-op on PostgreSQL.
        """
        if self._pool is not None:
            yield
            return
        connection = self._sqlite()
        connection.execute("PRAGMA wal_autocheckpoint = 100000")
        try:
            yield
        finally:
            connection.execute("PRAGMA wal_autocheckpoint = 1000")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def analyze(self) -> None:
        """Refresh the planner's statistics (after bulk loads); sampled on SQLite."""
        with self.write() as tx:
            if self.dialect == "sqlite":
                tx.execute("PRAGMA analysis_limit = 2000")
            tx.execute("ANALYZE")

    def migrate(self, component: str, migrations: Sequence[Migration]) -> list[int]:
        """Apply the component's migrations not yet applied; return the numbers applied."""
        numbers = [m.number for m in migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ConfigError(f"migrations of {component} must be numbered 1..n, got {numbers}")
        applied: list[int] = []
        with self.write() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, number INTEGER NOT NULL, name TEXT NOT NULL,"
                " PRIMARY KEY (component, number))"
            )
            rows = tx.execute(
                "SELECT number FROM schema_migrations WHERE component = ?", (component,)
            ).fetchall()
            done = {int(r[0]) for r in rows}
            for migration in migrations:
                if migration.number in done:
                    continue
                for statement in _statements(migration.sql[self.dialect]):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (component, number, name) VALUES (?, ?, ?)",
                    (component, migration.number, migration.name),
                )
                applied.append(migration.number)
        return applied


def _statements(script: str) -> list[str]:
    """Split a migration script on ``;`` line ends (migrations hold no procedural bodies)."""
    return [s.strip() for s in script.split(";\n") if s.strip().strip(";")]
