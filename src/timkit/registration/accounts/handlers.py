"""Org-Admin account logic (ML-129853): create, enrol a second factor, log in, log out, invite.

* :func:`create_account` consumes a registration token (from a verification or an
  invitation), checks username and password policy, and creates a *pending* account with a
  TOTP secret and an enrolment token. The account becomes active when its second factor is
  confirmed: :func:`confirm_totp` (a first valid code) or a WebAuthn registration
  (:func:`webauthn_register_finish` with the enrolment token).
* :func:`login` checks password and TOTP code; :func:`webauthn_login_begin` /
  :func:`webauthn_login_finish` check password and a WebAuthn assertion. Either yields a
  session (random token, stored hashed).
* Lockout: every failed password or second factor counts against the account; at
  ``accounts.max_failures`` in a row it is locked for ``accounts.lockout_seconds`` and refuses
  even correct credentials (429 ``M_LIMIT_EXCEEDED``). Unknown usernames cost the same argon2
  verification as known ones. Login failures say only "username, password or code wrong".
* Every outcome is audited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from timkit.core.errors import Codes, TimkitError
from timkit.registration.accounts import fido, passwords, totp
from timkit.registration.auth import Admin
from timkit.registration.context import RegistrationContext
from timkit.registration.storage import accounts, audit, organisations, sessions
from timkit.registration.storage.secrets import digest, new_token

REQUIREMENT = "ML-129853"
REQ_ADMIN = "ML-128757"


@dataclass(frozen=True)
class Enrolment:
    """What a new account's owner needs to enrol the second factor.

    Attributes:
        username: the account.
        organisation: the organisation's name.
        telematik_id: its TelematikID.
        totp_secret: base32 secret for the authenticator app.
        otpauth_uri: the same as ``otpauth://`` URI (the QR code's content).
        enrolment_token: proves ownership of the pending account (WebAuthn enrolment).
    """

    username: str
    organisation: str
    telematik_id: str
    totp_secret: str
    otpauth_uri: str
    enrolment_token: str


@dataclass(frozen=True)
class Session:
    """A new session: the token (bearer or cookie) and its idle timeout in seconds."""

    token: str
    expires_in: int
    admin: Admin


def _now() -> int:
    return int(time.time())


def _bad_login() -> TimkitError:
    return TimkitError(
        401, Codes.FORBIDDEN, "username, password or code wrong", requirement=REQUIREMENT
    )


def _locked(until: int) -> TimkitError:
    seconds = max(until - _now(), 1)
    return TimkitError(
        429,
        Codes.LIMIT_EXCEEDED,
        f"account locked after repeated failures; try again in {seconds} s",
        requirement=REQUIREMENT,
        extra={"retry_after_ms": seconds * 1000},
    )


def create_account(
    ctx: RegistrationContext, registration_token: str, username: str, password: str
) -> Enrolment:
    """Create a pending Org-Admin account (blocking; call via ``ctx.blocking``).

    Raises:
        TimkitError: 400 for a bad username or weak password; 403 for an unknown, used or
            expired registration token; 409 ``M_USER_IN_USE``; 409 (ML-128757) when a
            verification token meets an organisation that got an admin meanwhile.
    """
    settings = ctx.config.accounts
    passwords.check_username(username)
    passwords.check_policy(password, username, settings.password_min_length)
    password_hash = passwords.hash_password(password)
    secret = totp.new_secret()
    enrolment = new_token()
    with ctx.db.write() as tx:
        if accounts.by_username(tx, username) is not None:
            raise TimkitError(409, Codes.USER_IN_USE, f"username {username!r} is taken")
        taken = organisations.take_registration(tx, registration_token, _now())
        if taken is None:
            raise TimkitError(
                403,
                Codes.FORBIDDEN,
                "registration token unknown, used or expired; verify the organisation again",
                requirement=REQUIREMENT,
            )
        telematik_id, source = taken
        if source != "invite" and organisations.has_active_admin(tx, telematik_id):
            raise TimkitError(
                409,
                Codes.ORG_HAS_ADMIN,
                "the organisation already has an Org-Admin; ask them for an invitation",
                requirement=REQ_ADMIN,
            )
        accounts.insert(tx, username, telematik_id, password_hash, secret, digest(enrolment))
        organisation = organisations.get(tx, telematik_id)
        assert organisation is not None
        audit.record(
            tx, f"admin:{username}", telematik_id, "account.create", username, "success", source
        )
    return Enrolment(
        username,
        organisation.name,
        telematik_id,
        secret,
        totp.provisioning_uri(secret, username, settings.totp_issuer),
        enrolment,
    )


def _fail(ctx: RegistrationContext, account: accounts.Account, action: str) -> TimkitError:
    settings = ctx.config.accounts
    lock_until = _now() + settings.lockout_seconds
    with ctx.db.write() as tx:
        locked = accounts.note_failure(tx, account.id, settings.max_failures, lock_until)
        audit.record(
            tx,
            f"admin:{account.username}",
            account.telematik_id,
            action,
            account.username,
            "refused",
            "locked" if locked else "",
        )
    return _locked(lock_until) if locked else _bad_login()


def confirm_totp(ctx: RegistrationContext, username: str, code: str) -> Admin:
    """Activate a pending account with its first TOTP code (blocking).

    Raises:
        TimkitError: 401 for a wrong code or unknown account (counts toward lockout);
            429 while locked; 409 when the account is already active.
    """
    with ctx.db.read() as cur:
        account = accounts.by_username(cur, username)
    if account is None:
        raise _bad_login()
    if account.locked_until > _now():
        raise _locked(account.locked_until)
    if account.totp_confirmed:
        raise TimkitError(409, Codes.ALREADY_ACTIVE, "TOTP is already confirmed for this account")
    step = totp.matching_step(account.totp_secret, code)
    if step is None:
        raise _fail(ctx, account, "account.totp.confirm")
    with ctx.db.write() as tx:
        accounts.activate(tx, account.id, totp_step=step)
        audit.record(
            tx,
            f"admin:{username}",
            account.telematik_id,
            "account.totp.confirm",
            username,
            "success",
        )
    return Admin.of(account)


def _check_password(ctx: RegistrationContext, username: str, password: str) -> accounts.Account:
    with ctx.db.read() as cur:
        account = accounts.by_username(cur, username)
    ok = passwords.verify_password(account.password_hash if account else None, password)
    if account is None:
        raise _bad_login()
    if account.locked_until > _now():
        raise _locked(account.locked_until)
    if not ok:
        raise _fail(ctx, account, "account.login")
    if not account.active:
        raise TimkitError(
            403,
            Codes.NOT_ACTIVE,
            "the account is not active yet: confirm its second factor first",
            requirement=REQUIREMENT,
        )
    return account


def _session(ctx: RegistrationContext, account: accounts.Account, how: str) -> Session:
    settings = ctx.config.accounts
    token = new_token()
    with ctx.db.write() as tx:
        accounts.note_success(tx, account.id)
        sessions.create(tx, token, account.id, _now(), settings.session_lifetime)
        audit.record(
            tx,
            f"admin:{account.username}",
            account.telematik_id,
            "account.login",
            account.username,
            "success",
            how,
        )
    return Session(token, settings.session_idle, Admin.of(account))


def login(ctx: RegistrationContext, username: str, password: str, otp: str) -> Session:
    """Password + TOTP login (blocking).

    Raises:
        TimkitError: 401 for wrong credentials, 403 for a pending account, 429 while locked.
    """
    account = _check_password(ctx, username, password)
    if not account.totp_confirmed:
        raise TimkitError(
            401, Codes.WEBAUTHN_REQUIRED, "this account logs in with its WebAuthn authenticator"
        )
    step = totp.matching_step(account.totp_secret, otp)
    if step is None:
        raise _fail(ctx, account, "account.login.totp")
    with ctx.db.write() as tx:
        fresh = accounts.use_totp_step(tx, account.id, step)
    if not fresh:
        raise _fail(ctx, account, "account.login.totp")
    return _session(ctx, account, "totp")


def webauthn_login_begin(ctx: RegistrationContext, username: str, password: str) -> dict[str, Any]:
    """Password check, then WebAuthn assertion options ``{ceremony, publicKey}`` (blocking)."""
    account = _check_password(ctx, username, password)
    return fido.authentication_options(ctx, account)


def webauthn_login_finish(
    ctx: RegistrationContext, ceremony: str, credential: dict[str, Any]
) -> Session:
    """Check the assertion and open a session (blocking)."""
    account_id = fido.finish_authentication(ctx, ceremony, credential)
    with ctx.db.read() as cur:
        account = accounts.by_id(cur, account_id)
    if account is None or not account.active:
        raise _bad_login()
    if account.locked_until > _now():
        raise _locked(account.locked_until)
    return _session(ctx, account, "webauthn")


def _pending(ctx: RegistrationContext, enrolment_token: str) -> accounts.Account:
    key = digest(enrolment_token)
    with ctx.db.read() as cur:
        row = cur.execute(
            "SELECT username FROM accounts WHERE enrolment_hash = ? AND active = 0", (key,)
        ).fetchone()
        account = accounts.by_username(cur, row[0]) if row else None
    if account is None or not enrolment_token:
        raise TimkitError(403, Codes.FORBIDDEN, "unknown enrolment token or account active")
    return account


def webauthn_register_begin(
    ctx: RegistrationContext, *, admin: Admin | None = None, enrolment_token: str = ""
) -> dict[str, Any]:
    """Registration options for the logged-in ``admin`` or a pending account (blocking)."""
    if admin is not None:
        with ctx.db.read() as cur:
            account = accounts.by_id(cur, admin.account_id)
        assert account is not None
    else:
        account = _pending(ctx, enrolment_token)
    return fido.registration_options(ctx, account)


def webauthn_register_finish(
    ctx: RegistrationContext, ceremony: str, credential: dict[str, Any], name: str
) -> str:
    """Store the new authenticator; activates a pending account. Returns the username."""
    account_id = fido.finish_registration(ctx, ceremony, credential, name)
    with ctx.db.write() as tx:
        account = accounts.by_id(tx, account_id)
        assert account is not None
        if not account.active:
            accounts.activate(tx, account_id)
        audit.record(
            tx,
            f"admin:{account.username}",
            account.telematik_id,
            "account.webauthn.add",
            account.username,
            "success",
        )
    return account.username


def logout(ctx: RegistrationContext, token: str, admin: Admin) -> None:
    """End the session ``token`` (blocking)."""
    with ctx.db.write() as tx:
        sessions.delete(tx, token)
        audit.record(
            tx, admin.actor, admin.telematik_id, "account.logout", admin.username, "success"
        )


def invite(ctx: RegistrationContext, admin: Admin) -> tuple[str, int]:
    """A registration token for a further Org-Admin of ``admin``'s organisation (ML-128757).

    Returns:
        the token and its lifetime in seconds.
    """
    token = new_token()
    lifetime = ctx.config.accounts.registration_lifetime
    with ctx.db.write() as tx:
        organisations.add_registration(
            tx, token, admin.telematik_id, "invite", admin.actor, _now() + lifetime
        )
        audit.record(tx, admin.actor, admin.telematik_id, "account.invite", "", "success")
    return token, lifetime
