"""Who is calling: the logged-in Org-Admin behind a request, and the audit trail of admins.

Every protected handler (web pages and JSON API alike) starts with::

    admin = await require_admin(request)

which accepts, in this order,

* ``Authorization: Bearer <session token>`` (the JSON API; the token from
  ``POST /api/v1/login``);
* the session cookie :data:`SESSION_COOKIE` (``__Host-`` prefixed, ``Secure``, ``HttpOnly``,
  ``SameSite=Strict``; the web frontend). On ``/api/`` paths the cookie is accepted for safe
  methods only (``GET``/``HEAD``, the frontend's live domain check and progress polling), so a
  state-changing API call always needs the bearer token and cannot be forged cross-site;
  state-changing web forms are CSRF-checked by :mod:`timkit.registration.web.csrf`.

A session is valid for ``accounts.session_idle`` seconds of inactivity and at most
``accounts.session_lifetime`` seconds in all; a missing or invalid session is 401
``M_MISSING_TOKEN`` / ``M_UNKNOWN_TOKEN`` (the web layer turns that into a redirect to the
login page). Only *active* accounts (second factor confirmed) have sessions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.registration.context import RegistrationContext, context
from timkit.registration.storage import accounts, audit, sessions

SESSION_COOKIE = "__Host-rd-session"
REQUIREMENT = "ML-129853"
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Admin:
    """A logged-in Org-Admin and the organisation they act for.

    Attributes:
        account_id: the account's id.
        username: the login name.
        telematik_id: the organisation's TelematikID.
        profession_oid: the organisation's profession OID.
        organisation: the organisation's name.
    """

    account_id: int
    username: str
    telematik_id: str
    profession_oid: str
    organisation: str

    @classmethod
    def of(cls, account: accounts.Account) -> Admin:
        """The admin acting with ``account``."""
        return cls(
            account.id,
            account.username,
            account.telematik_id,
            account.profession_oid,
            account.organisation,
        )

    @property
    def actor(self) -> str:
        """How the audit log names this admin."""
        return f"admin:{self.username}"


ADMIN_KEY = web.RequestKey("registration.admin", Admin)


def session_token(request: web.Request) -> str | None:
    """The session token the request carries (bearer first, then the cookie), if any."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TimkitError(401, Codes.UNKNOWN_TOKEN, "Authorization must be 'Bearer <token>'")
        return token.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and (not request.path.startswith("/api/") or request.method in SAFE_METHODS):
        return cookie
    return None


def _lookup(ctx: RegistrationContext, token: str) -> Admin | None:
    settings = ctx.config.accounts
    with ctx.db.write() as tx:
        account_id = sessions.lookup(tx, token, int(time.time()), settings.session_idle)
        account = accounts.by_id(tx, account_id) if account_id is not None else None
    if account is None or not account.active:
        return None
    return Admin.of(account)


async def current_admin(request: web.Request) -> Admin | None:
    """The logged-in admin of ``request``, or None (no or an invalid session)."""
    if ADMIN_KEY in request:
        return request[ADMIN_KEY]
    token = session_token(request)
    if token is None:
        return None
    ctx = context(request)
    admin = await ctx.blocking(_lookup, ctx, token)
    if admin is not None:
        request[ADMIN_KEY] = admin
    return admin


async def require_admin(request: web.Request) -> Admin:
    """The logged-in Org-Admin of ``request``.

    Raises:
        TimkitError: 401 ``M_MISSING_TOKEN`` without a session, ``M_UNKNOWN_TOKEN`` for an
            unknown, expired or idle session.
    """
    if session_token(request) is None:
        raise TimkitError(
            401, Codes.MISSING_TOKEN, "login required (Org-Admin session)", requirement=REQUIREMENT
        )
    admin = await current_admin(request)
    if admin is None:
        raise TimkitError(
            401, Codes.UNKNOWN_TOKEN, "session unknown or expired", requirement=REQUIREMENT
        )
    return admin


async def audit_action(
    ctx: RegistrationContext,
    actor: Admin | str,
    action: str,
    target: str,
    result: str,
    *,
    telematik_id: str = "",
    detail: str = "",
) -> None:
    """Record one admin action in the audit log (never pass secrets in ``detail``).

    Args:
        ctx: the RD context.
        actor: the admin, or a description such as ``org:<TelematikID>`` or ``anonymous``.
        action: dotted action name, e.g. ``service.provision``.
        target: what was acted on (a domain, a username).
        result: ``success``, ``refused`` or ``failure``.
        telematik_id: the organisation (taken from ``actor`` when it is an :class:`Admin`).
        detail: a short explanation (an error message), no secrets.
    """
    if isinstance(actor, Admin):
        telematik_id = telematik_id or actor.telematik_id
        name = actor.actor
    else:
        name = actor

    def write() -> None:
        with ctx.db.write() as tx:
            audit.record(tx, name, telematik_id, action, target, result, detail)

    await ctx.blocking(write)
