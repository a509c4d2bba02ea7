"""Sessions of logged-in Org-Admins: token digest, idle and absolute expiry.

A session is valid while ``now - last_seen <= idle`` and ``now < expires``. :func:`touch`
refreshes ``last_seen``; an invalid session is deleted when it is looked up.
"""

from __future__ import annotations

from timkit.core.db import Cursor
from timkit.registration.storage.secrets import digest


def create(tx: Cursor, token: str, account_id: int, now: int, lifetime: int) -> None:
    """Store a new session for ``account_id`` under ``token``."""
    tx.execute(
        "INSERT INTO sessions (token_hash, account_id, created, last_seen, expires)"
        " VALUES (?, ?, ?, ?, ?)",
        (digest(token), account_id, now, now, now + lifetime),
    )


def lookup(tx: Cursor, token: str, now: int, idle: int) -> int | None:
    """The account id of a valid session ``token`` (refreshed); None (and deleted) else."""
    key = digest(token)
    row = tx.execute(
        "SELECT account_id, last_seen, expires FROM sessions WHERE token_hash = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    account_id, last_seen, expires = int(row[0]), int(row[1]), int(row[2])
    if now - last_seen > idle or now >= expires:
        tx.execute("DELETE FROM sessions WHERE token_hash = ?", (key,))
        return None
    if now != last_seen:
        tx.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, key))
    return account_id


def delete(tx: Cursor, token: str) -> None:
    """End the session ``token``."""
    tx.execute("DELETE FROM sessions WHERE token_hash = ?", (digest(token),))


def delete_account_sessions(tx: Cursor, account_id: int) -> None:
    """End every session of ``account_id``."""
    tx.execute("DELETE FROM sessions WHERE account_id = ?", (account_id,))
