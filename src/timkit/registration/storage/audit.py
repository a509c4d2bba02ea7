"""The audit log of the Registrierungs-Dienst: one row per admin action, insert only.

A row says who (``actor``: ``admin:<username>``, ``org:<TelematikID>`` before an account
exists, or ``anonymous``), for which organisation, did what (``action``, e.g.
``account.login``), to what (``target``: a username, a domain), with which ``result``
(``success``, ``refused``, ``failure``) and when. Rows never hold secrets: no passwords, codes,
tokens or links.
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
    telematik_id: str
    action: str
    target: str
    result: str
    detail: str


def record(
    tx: Cursor,
    actor: str,
    telematik_id: str,
    action: str,
    target: str,
    result: str,
    detail: str = "",
) -> None:
    """Insert one audit row inside the caller's write transaction ``tx``."""
    tx.execute(
        "INSERT INTO audit (at, actor, telematik_id, action, target, result, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            datetime.now(UTC).isoformat(timespec="microseconds"),
            actor,
            telematik_id,
            action,
            target,
            result,
            detail[:500],
        ),
    )


def query(db: Database, *, telematik_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` rows, newest first; only one organisation's when given."""
    sql = "SELECT id, at, actor, telematik_id, action, target, result, detail FROM audit"
    params: list[object] = []
    if telematik_id is not None:
        sql += " WHERE telematik_id = ?"
        params.append(telematik_id)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    with db.read() as cur:
        rows = cur.execute(sql, params).fetchall()
    return [AuditEntry(int(r[0]), *r[1:]) for r in rows]
