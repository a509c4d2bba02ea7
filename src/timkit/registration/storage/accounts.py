"""Org-Admin accounts, their WebAuthn credentials and ceremony challenges (ML-129853).

An account is created *pending* (``active = 0``) with its password hash, a TOTP secret and an
enrolment token (digest); it becomes active when a second factor is confirmed: a first valid
TOTP code or a registered WebAuthn credential. Failure counting and lockout are per account
(:func:`note_failure`, :func:`note_success`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from timkit.core.db import Cursor


@dataclass(frozen=True)
class Account:
    """One Org-Admin account with its organisation's identity.

    Attributes:
        id: account id.
        username: login name (unique).
        telematik_id: the organisation's TelematikID.
        profession_oid: the organisation's profession OID.
        organisation: the organisation's name.
        password_hash: argon2id hash.
        totp_secret: base32 TOTP secret.
        totp_confirmed: whether a first TOTP code was accepted.
        totp_last_step: the last accepted TOTP time step (a code is accepted once).
        enrolment_hash: digest of the enrolment token (empty once active).
        active: whether the account may log in.
        failures: failed attempts in a row.
        locked_until: Unix time until which every login is refused.
        webauthn: number of registered WebAuthn credentials.
    """

    id: int
    username: str
    telematik_id: str
    profession_oid: str
    organisation: str
    password_hash: str
    totp_secret: str
    totp_confirmed: bool
    totp_last_step: int
    enrolment_hash: str
    active: bool
    failures: int
    locked_until: int
    webauthn: int


_SELECT = (
    "SELECT a.id, a.username, a.telematik_id, o.profession_oid, o.name, a.password_hash,"
    " a.totp_secret, a.totp_confirmed, a.totp_last_step, a.enrolment_hash, a.active,"
    " a.failures, a.locked_until,"
    " (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.account_id = a.id)"
    " FROM accounts a JOIN organisations o ON o.telematik_id = a.telematik_id"
)


def _account(row: tuple[object, ...] | None) -> Account | None:
    if row is None:
        return None
    r = list(row)
    return Account(
        int(r[0]),  # type: ignore[call-overload]
        str(r[1]),
        str(r[2]),
        str(r[3]),
        str(r[4]),
        str(r[5]),
        str(r[6]),
        bool(r[7]),
        int(r[8]),  # type: ignore[call-overload]
        str(r[9]),
        bool(r[10]),
        int(r[11]),  # type: ignore[call-overload]
        int(r[12]),  # type: ignore[call-overload]
        int(r[13]),  # type: ignore[call-overload]
    )


def by_username(cur: Cursor, username: str) -> Account | None:
    """The account named ``username``."""
    return _account(cur.execute(_SELECT + " WHERE a.username = ?", (username,)).fetchone())


def by_id(cur: Cursor, account_id: int) -> Account | None:
    """The account with ``account_id``."""
    return _account(cur.execute(_SELECT + " WHERE a.id = ?", (account_id,)).fetchone())


def by_organisation(cur: Cursor, telematik_id: str) -> list[Account]:
    """Every account of the organisation, by username."""
    rows = cur.execute(
        _SELECT + " WHERE a.telematik_id = ? ORDER BY a.username", (telematik_id,)
    ).fetchall()
    return [a for a in (_account(r) for r in rows) if a is not None]


def insert(
    tx: Cursor,
    username: str,
    telematik_id: str,
    password_hash: str,
    totp_secret: str,
    enrolment_hash: str,
) -> int:
    """Create a pending account; its id. The caller checked the username is free."""
    row = tx.execute(
        "INSERT INTO accounts (username, telematik_id, password_hash, totp_secret,"
        " totp_confirmed, totp_last_step, enrolment_hash, active, failures, locked_until,"
        " created) VALUES (?, ?, ?, ?, 0, 0, ?, 0, 0, 0, ?) RETURNING id",
        (
            username,
            telematik_id,
            password_hash,
            totp_secret,
            enrolment_hash,
            datetime.now(UTC).isoformat(timespec="seconds"),
        ),
    ).fetchone()
    return int(row[0])


def activate(tx: Cursor, account_id: int, *, totp_step: int | None = None) -> None:
    """Make the account active (a second factor is confirmed); forget the enrolment token."""
    if totp_step is not None:
        tx.execute(
            "UPDATE accounts SET totp_confirmed = 1, totp_last_step = ? WHERE id = ?",
            (totp_step, account_id),
        )
    tx.execute(
        "UPDATE accounts SET active = 1, enrolment_hash = '', failures = 0 WHERE id = ?",
        (account_id,),
    )


def use_totp_step(tx: Cursor, account_id: int, step: int) -> bool:
    """Record ``step`` as used; False when it (or a later one) was used already (replay)."""
    tx.execute(
        "UPDATE accounts SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?",
        (step, account_id, step),
    )
    return tx.rowcount == 1


def note_failure(tx: Cursor, account_id: int, max_failures: int, lock_until: int) -> bool:
    """Count a failed attempt; lock when it reaches ``max_failures``. True if now locked."""
    row = tx.execute(
        "UPDATE accounts SET failures = failures + 1 WHERE id = ? RETURNING failures",
        (account_id,),
    ).fetchone()
    if row is not None and int(row[0]) >= max_failures:
        tx.execute(
            "UPDATE accounts SET failures = 0, locked_until = ? WHERE id = ?",
            (lock_until, account_id),
        )
        return True
    return False


def note_success(tx: Cursor, account_id: int) -> None:
    """Reset the failure counter after a complete, successful login."""
    tx.execute("UPDATE accounts SET failures = 0 WHERE id = ?", (account_id,))


@dataclass(frozen=True)
class Credential:
    """A registered WebAuthn credential."""

    credential_id: str
    account_id: int
    public_key: bytes
    sign_count: int
    name: str


def add_credential(
    tx: Cursor, credential_id: str, account_id: int, public_key: bytes, sign_count: int, name: str
) -> None:
    """Store a WebAuthn credential (``credential_id`` base64url)."""
    tx.execute(
        "INSERT INTO webauthn_credentials (credential_id, account_id, public_key, sign_count,"
        " name, created) VALUES (?, ?, ?, ?, ?, ?)",
        (
            credential_id,
            account_id,
            public_key,
            sign_count,
            name,
            datetime.now(UTC).isoformat(timespec="seconds"),
        ),
    )


def credentials(cur: Cursor, account_id: int) -> list[Credential]:
    """The account's WebAuthn credentials."""
    rows = cur.execute(
        "SELECT credential_id, account_id, public_key, sign_count, name"
        " FROM webauthn_credentials WHERE account_id = ?",
        (account_id,),
    ).fetchall()
    return [Credential(r[0], int(r[1]), bytes(r[2]), int(r[3]), r[4]) for r in rows]


def set_sign_count(tx: Cursor, credential_id: str, sign_count: int) -> None:
    """Store the authenticator's new signature counter."""
    tx.execute(
        "UPDATE webauthn_credentials SET sign_count = ? WHERE credential_id = ?",
        (sign_count, credential_id),
    )


def add_challenge(
    tx: Cursor, ceremony: str, account_id: int, kind: str, challenge: bytes, expires: int, now: int
) -> None:
    """Store a ceremony challenge under the id ``ceremony``; purges expired ones."""
    tx.execute("DELETE FROM webauthn_challenges WHERE expires < ?", (now,))
    tx.execute(
        "INSERT INTO webauthn_challenges (id, account_id, kind, challenge, expires)"
        " VALUES (?, ?, ?, ?, ?)",
        (ceremony, account_id, kind, challenge, expires),
    )


def take_challenge(tx: Cursor, ceremony: str, kind: str, now: int) -> tuple[int, bytes] | None:
    """``(account_id, challenge)`` of the ceremony, removed; None if unknown or expired."""
    row = tx.execute(
        "DELETE FROM webauthn_challenges WHERE id = ? AND kind = ?"
        " RETURNING account_id, challenge, expires",
        (ceremony, kind),
    ).fetchone()
    if row is None or int(row[2]) < now:
        return None
    return int(row[0]), bytes(row[1])
