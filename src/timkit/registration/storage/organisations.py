"""Verified organisations and the single-use registration tokens that create their admins.

A verification (OIDC with the SMC-B or a confirmed KIM link) upserts the organisation and
issues one registration token; so does an invitation by an existing Org-Admin (ML-128757).
``take_registration`` consumes a token exactly once, inside the transaction that creates the
account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from timkit.core.db import Cursor
from timkit.registration.storage.secrets import digest


@dataclass(frozen=True)
class Organisation:
    """A verified organisation (AF_10103, ML-128759).

    Attributes:
        telematik_id: its TelematikID (``idNummer`` of the SMC-B).
        profession_oid: its institution profession OID.
        name: its name (``organizationName`` or the LDAP ``displayName``).
        verified_by: ``oidc`` (Verfahren 1), ``kim`` (Verfahren 2).
        verified_at: ISO time of the last verification.
    """

    telematik_id: str
    profession_oid: str
    name: str
    verified_by: str
    verified_at: str


def upsert(tx: Cursor, telematik_id: str, profession_oid: str, name: str, by: str) -> Organisation:
    """Insert or refresh the organisation after a successful verification."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    tx.execute(
        "INSERT INTO organisations (telematik_id, profession_oid, name, verified_by, verified_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (telematik_id) DO UPDATE SET"
        " profession_oid = excluded.profession_oid, name = excluded.name,"
        " verified_by = excluded.verified_by, verified_at = excluded.verified_at",
        (telematik_id, profession_oid, name, by, now),
    )
    return Organisation(telematik_id, profession_oid, name, by, now)


def get(cur: Cursor, telematik_id: str) -> Organisation | None:
    """The organisation with ``telematik_id``, if verified."""
    row = cur.execute(
        "SELECT telematik_id, profession_oid, name, verified_by, verified_at"
        " FROM organisations WHERE telematik_id = ?",
        (telematik_id,),
    ).fetchone()
    return Organisation(*row) if row else None


def has_active_admin(cur: Cursor, telematik_id: str) -> bool:
    """Whether the organisation already has an active Org-Admin account."""
    row = cur.execute(
        "SELECT 1 FROM accounts WHERE telematik_id = ? AND active = 1", (telematik_id,)
    ).fetchone()
    return row is not None


def add_registration(
    tx: Cursor, token: str, telematik_id: str, source: str, created_by: str, expires: int
) -> None:
    """Store a registration token (its digest) for ``telematik_id``."""
    tx.execute(
        "INSERT INTO registrations (token_hash, telematik_id, source, created_by, expires, used)"
        " VALUES (?, ?, ?, ?, ?, 0)",
        (digest(token), telematik_id, source, created_by, expires),
    )


def take_registration(tx: Cursor, token: str, now: int) -> tuple[str, str] | None:
    """Consume ``token``: its ``(telematik_id, source)``; None if unknown, used or expired."""
    row = tx.execute(
        "UPDATE registrations SET used = ? WHERE token_hash = ? AND used = 0 AND expires >= ?"
        " RETURNING telematik_id, source",
        (now, digest(token), now),
    ).fetchone()
    return (row[0], row[1]) if row else None
