"""Started OIDC flows (Verfahren 1) and mailed KIM links (Verfahren 2): short-lived, single use.

Both are looked up by the digest of a random value the browser carries (``state``, the link
token); taking one deletes or marks it in the same statement, so a replay finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from timkit.core.db import Cursor
from timkit.registration.storage.secrets import digest


@dataclass(frozen=True)
class OidcFlow:
    """What the RD keeps between the redirect to the IDP and the callback."""

    verifier: str
    nonce: str
    mode: str
    lang: str


def add_flow(tx: Cursor, state: str, flow: OidcFlow, expires: int, now: int) -> None:
    """Store a started flow under ``state``; expired flows are purged on the way."""
    tx.execute("DELETE FROM oidc_flows WHERE expires < ?", (now,))
    tx.execute(
        "INSERT INTO oidc_flows (state_hash, verifier, nonce, mode, lang, expires)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (digest(state), flow.verifier, flow.nonce, flow.mode, flow.lang, expires),
    )


def take_flow(tx: Cursor, state: str, now: int) -> OidcFlow | None:
    """The flow started with ``state``, removed; None if unknown, used or expired."""
    row = tx.execute(
        "DELETE FROM oidc_flows WHERE state_hash = ?"
        " RETURNING verifier, nonce, mode, lang, expires",
        (digest(state),),
    ).fetchone()
    if row is None or int(row[4]) < now:
        return None
    return OidcFlow(row[0], row[1], row[2], row[3])


@dataclass(frozen=True)
class KimLink:
    """A confirmation link mailed to an organisation's KIM address."""

    telematik_id: str
    profession_oid: str
    name: str
    mail: str
    expires: int
    used: int


def add_link(
    tx: Cursor,
    token: str,
    telematik_id: str,
    profession_oid: str,
    name: str,
    mail: str,
    expires: int,
) -> None:
    """Store a link token (its digest)."""
    tx.execute(
        "INSERT INTO kim_links (token_hash, telematik_id, profession_oid, name, mail, created,"
        " expires, used) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        (
            digest(token),
            telematik_id,
            profession_oid,
            name,
            mail,
            datetime.now(UTC).isoformat(timespec="seconds"),
            expires,
        ),
    )


def get_link(cur: Cursor, token: str) -> KimLink | None:
    """The link of ``token`` whatever its state (the caller explains expired or used)."""
    row = cur.execute(
        "SELECT telematik_id, profession_oid, name, mail, expires, used FROM kim_links"
        " WHERE token_hash = ?",
        (digest(token),),
    ).fetchone()
    return KimLink(row[0], row[1], row[2], row[3], int(row[4]), int(row[5])) if row else None


def use_link(tx: Cursor, token: str, now: int) -> bool:
    """Mark the link used; False when it was used or expired meanwhile (a race lost)."""
    tx.execute(
        "UPDATE kim_links SET used = ? WHERE token_hash = ? AND used = 0 AND expires >= ?",
        (now, digest(token), now),
    )
    return tx.rowcount == 1
