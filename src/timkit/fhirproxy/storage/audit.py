"""The audit log: one row per write through the FHIR-Proxy (who, what, when, result).

Rows are only ever inserted; the operator reads them with ``timkit directory audit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from timkit.core.db import Cursor, Database


@dataclass(frozen=True)
class AuditEntry:
    """One audited action."""

    id: int
    at: str
    actor: str
    action: str
    target: str
    status: int
    detail: str


def record(tx: Cursor, actor: str, action: str, target: str, status: int, detail: str = "") -> None:
    """Insert an audit row inside the caller's write transaction ``tx``."""
    tx.execute(
        "INSERT INTO audit (at, actor, action, target, status, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (
            datetime.now(UTC).isoformat(timespec="microseconds"),
            actor,
            action,
            target,
            status,
            detail,
        ),
    )


class AuditLog:
    """Writing and querying the audit table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, actor: str, action: str, target: str, status: int, detail: str = "") -> None:
        """Insert one audit row in its own transaction."""
        with self.db.write() as tx:
            record(tx, actor, action, target, status, detail)

    def query(
        self,
        *,
        actor: str | None = None,
        since: str | None = None,
        target: str | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries matching every given filter, newest first.

        Args:
            actor: exact actor, e.g. ``provider:timkit-demo`` or ``owner:1-2.58.00000040``.
            since: ISO timestamp; only entries at or after it.
            target: substring of the target (a domain, ``Type/id``).
            limit: maximum entries.
        """
        sql = "SELECT id, at, actor, action, target, status, detail FROM audit WHERE 1 = 1"
        params: list[object] = []
        if actor:
            sql += " AND actor = ?"
            params.append(actor)
        if since:
            sql += " AND at >= ?"
            params.append(since)
        if target:
            sql += " AND target LIKE ?"
            params.append(f"%{target}%")
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self.db.read() as cur:
            rows = cur.execute(sql, params).fetchall()
        return [AuditEntry(*row) for row in rows]
