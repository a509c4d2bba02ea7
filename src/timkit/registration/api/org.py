"""JSON API of AF_10103 and the Org-Admin accounts, for providers who automate onboarding.

All bodies are JSON objects; errors are ``{"errcode", "error"}`` (rendered by :mod:`.app`).
``Bearer`` = ``Authorization: Bearer <access_token>`` from a login.

==============================================  ===========================================
request                                         response
==============================================  ===========================================
``POST /api/v1/organisations/oidc`` ``{lang?}``  200 ``{authorization_url, expires_in}``
``GET  /oidc/callback?code=&state=``            200 ``{registration_token, expires_in,
                                                organisation: {telematikID, professionOID,
                                                name, verified_by}}`` for API-started flows
``POST /api/v1/organisations/kim``              202 ``{sent_to}`` (masked KIM address)
``{telematikID, lang?}``
``POST /api/v1/organisations/kim/confirm``      200 as the OIDC callback
``{token}``
``POST /api/v1/accounts``                       201 ``{username, telematikID, organisation,
``{registration_token, username, password}``    totp_secret, otpauth_uri, enrolment_token}``
``POST /api/v1/accounts/totp``                  200 ``{username, active: true}``
``{username, code}``
``POST /api/v1/webauthn/register/begin``        200 ``{ceremony, publicKey}`` (Bearer, or
``{enrolment_token?}``                          the enrolment token of a pending account)
``POST /api/v1/webauthn/register/finish``       200 ``{username, active: true}``
``{ceremony, credential, name?}``
``POST /api/v1/login``                          200 ``{access_token, token_type, expires_in}``
``{username, password, otp}``
``POST /api/v1/login/webauthn/begin``           200 ``{ceremony, publicKey}``
``{username, password}``
``POST /api/v1/login/webauthn/finish``          200 as ``/api/v1/login``
``{ceremony, credential}``
``POST /api/v1/logout`` (Bearer)                200 ``{}``
``GET  /api/v1/account`` (Bearer)               200 ``{username, telematikID,
                                                professionOID, organisation}``
``POST /api/v1/invitations`` (Bearer)           201 ``{registration_token, expires_in}``
``GET  /api/v1/audit`` (Bearer)                 200 ``{entries: [...]}`` (own organisation)
==============================================  ===========================================

Logins and KIM mails are rate-limited per client IP (429 ``M_LIMIT_EXCEEDED`` with
``retry_after_ms``, :mod:`timkit.registration.accounts.ratelimit`), on top of the
per-account lockout.
``expires_in`` of a login is the idle timeout: each authenticated call extends the session,
up to its absolute lifetime. ``credential`` is the ``PublicKeyCredential`` as JSON (WebAuthn
Level 3 ``toJSON()``). A script drives Verfahren 1 without a browser: start, GET the
``authorization_url`` at the IDP, complete the IDP's login (the IDP stand-in's card form), and
follow the redirect to ``/oidc/callback``, which answers JSON for an API-started flow.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from timkit.registration.accounts import handlers as accounts
from timkit.registration.accounts import ratelimit
from timkit.registration.auth import require_admin, session_token
from timkit.registration.context import context
from timkit.registration.jsonio import NO_STORE, json_response, obj, read_json, text
from timkit.registration.storage import audit
from timkit.registration.verification import handlers as verification
from timkit.registration.verification.handlers import VERIFIERS_KEY, Verified


def verified_body(verified: Verified) -> dict[str, Any]:
    """The JSON answer to a completed verification."""
    org = verified.organisation
    return {
        "registration_token": verified.registration_token,
        "expires_in": verified.expires_in,
        "organisation": {
            "telematikID": org.telematik_id,
            "professionOID": org.profession_oid,
            "name": org.name,
            "verified_by": org.verified_by,
        },
    }


def _lang(body: dict[str, Any]) -> str:
    return "en" if body.get("lang") == "en" else "de"


def _username_password(body: dict[str, Any]) -> tuple[str, str]:
    """``username`` and ``password`` of a body (400 when missing or too long)."""
    return text(body, "username", limit=64), text(body, "password", limit=1024)


def _ceremony(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``ceremony`` and ``credential`` of a WebAuthn finish body (400 when unusable)."""
    return text(body, "ceremony", limit=128), obj(body, "credential")


async def start_oidc(request: web.Request) -> web.Response:
    """``POST /api/v1/organisations/oidc``."""
    ctx = context(request)
    body = await read_json(request, optional=True)
    url = await verification.start_oidc(ctx, request.app[VERIFIERS_KEY], "api", _lang(body))
    return json_response(
        {"authorization_url": url, "expires_in": ctx.config.idp.flow_lifetime}, headers=NO_STORE
    )


async def start_kim(request: web.Request) -> web.Response:
    """``POST /api/v1/organisations/kim`` (rate-limited per client IP)."""
    ratelimit.check(request, "kim")
    ctx = context(request)
    body = await read_json(request)
    sent_to = await verification.start_kim(
        ctx, request.app[VERIFIERS_KEY], text(body, "telematikID", limit=128), _lang(body)
    )
    return json_response({"sent_to": sent_to}, 202)


async def confirm_kim(request: web.Request) -> web.Response:
    """``POST /api/v1/organisations/kim/confirm``."""
    ctx = context(request)
    body = await read_json(request)
    verified = await verification.confirm_kim(ctx, text(body, "token", limit=128), _lang(body))
    return json_response(verified_body(verified), headers=NO_STORE)


async def create_account(request: web.Request) -> web.Response:
    """``POST /api/v1/accounts``."""
    ctx = context(request)
    body = await read_json(request)
    enrolment = await ctx.blocking(
        accounts.create_account,
        ctx,
        text(body, "registration_token", limit=128),
        *_username_password(body),
    )
    answer = {
        "username": enrolment.username,
        "telematikID": enrolment.telematik_id,
        "organisation": enrolment.organisation,
        "totp_secret": enrolment.totp_secret,
        "otpauth_uri": enrolment.otpauth_uri,
        "enrolment_token": enrolment.enrolment_token,
    }
    return json_response(answer, 201, headers=NO_STORE)


async def confirm_totp(request: web.Request) -> web.Response:
    """``POST /api/v1/accounts/totp``."""
    ctx = context(request)
    body = await read_json(request)
    admin = await ctx.blocking(
        accounts.confirm_totp, ctx, text(body, "username", limit=64), text(body, "code", limit=16)
    )
    return json_response({"username": admin.username, "active": True})


def _session_body(session: accounts.Session) -> dict[str, Any]:
    return {
        "access_token": session.token,
        "token_type": "Bearer",
        "expires_in": session.expires_in,
    }


async def login(request: web.Request) -> web.Response:
    """``POST /api/v1/login`` (rate-limited per client IP, see ``accounts/ratelimit.py``)."""
    ratelimit.check(request, "login")
    ctx = context(request)
    body = await read_json(request)
    session = await ctx.blocking(
        accounts.login,
        ctx,
        *_username_password(body),
        text(body, "otp", limit=16),
    )
    return json_response(_session_body(session), headers=NO_STORE)


async def webauthn_login_begin(request: web.Request) -> web.Response:
    """``POST /api/v1/login/webauthn/begin`` (rate-limited like ``/api/v1/login``)."""
    ratelimit.check(request, "login")
    ctx = context(request)
    body = await read_json(request)
    options = await ctx.blocking(accounts.webauthn_login_begin, ctx, *_username_password(body))
    return json_response(options, headers=NO_STORE)


async def webauthn_login_finish(request: web.Request) -> web.Response:
    """``POST /api/v1/login/webauthn/finish``."""
    ctx = context(request)
    body = await read_json(request)
    session = await ctx.blocking(
        accounts.webauthn_login_finish,
        ctx,
        *_ceremony(body),
    )
    return json_response(_session_body(session), headers=NO_STORE)


async def webauthn_register_begin(request: web.Request) -> web.Response:
    """``POST /api/v1/webauthn/register/begin``."""
    ctx = context(request)
    body = await read_json(request, optional=True)
    enrolment = text(body, "enrolment_token", required=False, limit=128)
    admin = None if enrolment else await require_admin(request)
    options = await ctx.blocking(
        lambda: accounts.webauthn_register_begin(ctx, admin=admin, enrolment_token=enrolment)
    )
    return json_response(options, headers=NO_STORE)


async def webauthn_register_finish(request: web.Request) -> web.Response:
    """``POST /api/v1/webauthn/register/finish``."""
    ctx = context(request)
    body = await read_json(request)
    username = await ctx.blocking(
        accounts.webauthn_register_finish,
        ctx,
        *_ceremony(body),
        text(body, "name", required=False, limit=64),
    )
    return json_response({"username": username, "active": True})


async def logout(request: web.Request) -> web.Response:
    """``POST /api/v1/logout``."""
    ctx = context(request)
    admin = await require_admin(request)
    token = session_token(request)
    assert token is not None
    await ctx.blocking(accounts.logout, ctx, token, admin)
    return json_response({})


async def account(request: web.Request) -> web.Response:
    """``GET /api/v1/account``."""
    admin = await require_admin(request)
    return json_response(
        {
            "username": admin.username,
            "telematikID": admin.telematik_id,
            "professionOID": admin.profession_oid,
            "organisation": admin.organisation,
        }
    )


async def invite(request: web.Request) -> web.Response:
    """``POST /api/v1/invitations``."""
    ctx = context(request)
    admin = await require_admin(request)
    token, lifetime = await ctx.blocking(accounts.invite, ctx, admin)
    return json_response(
        {"registration_token": token, "expires_in": lifetime}, 201, headers=NO_STORE
    )


async def audit_log(request: web.Request) -> web.Response:
    """``GET /api/v1/audit``."""
    ctx = context(request)
    admin = await require_admin(request)
    entries = await ctx.blocking(
        lambda: audit.query(ctx.db, telematik_id=admin.telematik_id, limit=200)
    )
    return json_response({"entries": [asdict(e) for e in entries]})


def setup(app: web.Application) -> None:
    """Add the AF_10103 and account endpoints to ``app``."""
    router = app.router
    router.add_post("/api/v1/organisations/oidc", start_oidc)
    router.add_post("/api/v1/organisations/kim", start_kim)
    router.add_post("/api/v1/organisations/kim/confirm", confirm_kim)
    router.add_post("/api/v1/accounts", create_account)
    router.add_post("/api/v1/accounts/totp", confirm_totp)
    router.add_post("/api/v1/webauthn/register/begin", webauthn_register_begin)
    router.add_post("/api/v1/webauthn/register/finish", webauthn_register_finish)
    router.add_post("/api/v1/login", login)
    router.add_post("/api/v1/login/webauthn/begin", webauthn_login_begin)
    router.add_post("/api/v1/login/webauthn/finish", webauthn_login_finish)
    router.add_post("/api/v1/logout", logout)
    router.add_get("/api/v1/account", account)
    router.add_post("/api/v1/invitations", invite)
    router.add_get("/api/v1/audit", audit_log)
