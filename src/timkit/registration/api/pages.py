"""The RD's web pages (AF_10103, accounts, AF_10060), server-rendered; logic lives in handlers.

==============================  ============================================================
page                            what it does
==============================  ============================================================
``GET /``                       start: both Verfahren (dashboard link when logged in)
``POST /oidc/start``            Verfahren 1: 303 to the IDP
``GET /oidc/callback``          the IDP's redirect: organisation verified → account form
                                (API-started flows answer JSON, see :mod:`.org`)
``POST /kim/start``             Verfahren 2: mail the link → "sent" page
``GET /kim/confirm?token=``     confirmation page with a button (link scanners only GET)
``POST /kim/confirm``           organisation verified → account form
``GET /register?invitation=``   account form for an invited admin (ML-128757)
``POST /account/setup``         create the pending account → TOTP QR + WebAuthn enrolment
``POST /account/totp``          first TOTP code → account active
``GET|POST /login``             password + TOTP (WebAuthn via ``rd.js`` + ``/login/session``)
``POST /login/session``         adopt a session token from the WebAuthn login as the cookie
``POST /logout``                end the session
``GET /dashboard``              the organisation's Messenger-Services + provision form
``POST /services``              provision → progress page
``GET /services/{domain}``      progress (polls ``/api/v1/services/{domain}`` via ``rd.js``)
``GET|POST /services/{d}/delete``  deprovision, confirmed by typing the domain
``POST /invitations``           invitation link for a further Org-Admin
==============================  ============================================================

Every POST form is CSRF-checked (:mod:`timkit.registration.web.csrf`); pages needing a login
redirect to ``/login``.
``POST /login`` and ``POST /kim/start`` are rate-limited per client IP
(:mod:`~timkit.registration.accounts.ratelimit`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.registration.accounts import handlers as accounts
from timkit.registration.accounts import ratelimit
from timkit.registration.accounts.ratelimit import RateLimited
from timkit.registration.accounts.totp import qr_svg
from timkit.registration.api.org import verified_body
from timkit.registration.auth import SESSION_COOKIE, Admin, current_admin
from timkit.registration.context import RegistrationContext, context
from timkit.registration.jsonio import NO_STORE, json_response
from timkit.registration.provisioning import handlers as provisioning
from timkit.registration.storage import sessions
from timkit.registration.storage.secrets import digest
from timkit.registration.verification import handlers as verification
from timkit.registration.verification.handlers import VERIFIERS_KEY, Verified
from timkit.registration.web import csrf
from timkit.registration.web.i18n import language, translator
from timkit.registration.web.render import page

STATIC = Path(__file__).parents[1] / "web" / "static"
MAX_FORM = 16 * 1024
JSON_KEY = web.RequestKey("registration.answer_json", bool)
"""Set on a request whose errors are rendered as JSON although its path is a page's."""


async def form(request: web.Request) -> dict[str, str]:
    """The POSTed form fields after the CSRF check."""
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise TimkitError(413, Codes.TOO_LARGE, "form too large")
    data = await request.post()
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    csrf.check(request, fields.get(csrf.FIELD, ""), context(request).base)
    return fields


def set_session_cookie(response: web.StreamResponse, token: str) -> None:
    """The session cookie: ``__Host-``, Secure, HttpOnly, SameSite=Strict, session-scoped."""
    response.set_cookie(
        SESSION_COOKIE, token, path="/", secure=True, httponly=True, samesite="Strict"
    )


def redirect(location: str) -> web.HTTPSeeOther:
    """303 to ``location`` (a local path)."""
    return web.HTTPSeeOther(location, headers=NO_STORE)


Page = Callable[[web.Request, Admin], Awaitable[web.StreamResponse]]


def logged_in(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a page that needs an Org-Admin: without a session, 303 to ``/login``."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        admin = await current_admin(request)
        if admin is None:
            raise redirect("/login")
        return await handler(request, admin)

    wrapped.__doc__ = handler.__doc__
    return wrapped


async def start(request: web.Request) -> web.StreamResponse:
    """``GET /``."""
    verifiers = request.app[VERIFIERS_KEY]
    return page(
        request,
        "start.html",
        admin=await current_admin(request),
        oidc_enabled=verifiers.oidc.enabled,
        kim_enabled=verifiers.kim.enabled,
    )


async def oidc_start(request: web.Request) -> web.StreamResponse:
    """``POST /oidc/start``."""
    await form(request)
    ctx = context(request)
    url = await verification.start_oidc(ctx, request.app[VERIFIERS_KEY], "web", language(request))
    raise web.HTTPSeeOther(url, headers=NO_STORE)


def _account_form(
    request: web.Request, verified: Verified | None, token: str, **extra: Any
) -> web.Response:
    ctx = context(request)
    values: dict[str, Any] = {"username": "", "problem": ""}
    values.update(extra)
    return page(
        request,
        "verified.html",
        organisation=verified.organisation if verified else None,
        registration_token=token,
        min_length=ctx.config.accounts.password_min_length,
        **values,
    )


async def oidc_callback(request: web.Request) -> web.StreamResponse:
    """``GET /oidc/callback``: web flows get the account form, API flows JSON."""
    ctx = context(request)
    query = request.query
    state = query.get("state", "")
    flow_mode = await _flow_mode(ctx, state)
    if flow_mode == "api":
        request[JSON_KEY] = True
    if "error" in query:
        raise TimkitError(
            401, Codes.IDP_REFUSED, f"the IDP refused the login: {query.get('error', '')[:100]}"
        )
    verified = await verification.finish_oidc(
        ctx, request.app[VERIFIERS_KEY], query.get("code", ""), state
    )
    if verified.mode == "api":
        return json_response(verified_body(verified), headers=NO_STORE)
    return _account_form(request, verified, verified.registration_token)


async def _flow_mode(ctx: RegistrationContext, state: str) -> str:
    """How the flow of ``state`` was started (``web``/``api``), without consuming it."""

    def read() -> str:
        with ctx.db.read() as cur:
            row = cur.execute(
                "SELECT mode FROM oidc_flows WHERE state_hash = ?", (digest(state),)
            ).fetchone()
        return str(row[0]) if row else "web"

    return await ctx.blocking(read) if state else "web"


async def kim_start(request: web.Request) -> web.StreamResponse:
    """``POST /kim/start`` (rate-limited per client IP: 429 page with the wait)."""
    fields = await form(request)
    ratelimit.check(request, "kim")
    ctx = context(request)
    sent_to = await verification.start_kim(
        ctx, request.app[VERIFIERS_KEY], fields.get("telematik_id", ""), language(request)
    )
    hours = max(ctx.config.kim.link_lifetime // 3600, 1)
    return page(request, "kim_sent.html", sent_to=sent_to, hours=hours)


async def kim_confirm_page(request: web.Request) -> web.StreamResponse:
    """``GET /kim/confirm?token=``: a button, so that link scanners do not use the link up."""
    return page(request, "kim_confirm.html", token=request.query.get("token", "")[:128])


async def kim_confirm(request: web.Request) -> web.StreamResponse:
    """``POST /kim/confirm``."""
    fields = await form(request)
    ctx = context(request)
    verified = await verification.confirm_kim(ctx, fields.get("token", "")[:128], language(request))
    return _account_form(request, verified, verified.registration_token)


async def register_invited(request: web.Request) -> web.StreamResponse:
    """``GET /register?invitation=``."""
    return _account_form(request, None, request.query.get("invitation", "")[:128])


async def account_setup(request: web.Request) -> web.StreamResponse:
    """``POST /account/setup``."""
    fields = await form(request)
    ctx = context(request)
    t = translator(language(request))
    token = fields.get("registration_token", "")[:128]
    username = fields.get("username", "")[:64]
    password = fields.get("password", "")[:1024]
    if password != fields.get("password2", ""):
        return _account_form(
            request, None, token, username=username, problem=t("account.password.mismatch")
        )
    try:
        enrolment = await ctx.blocking(accounts.create_account, ctx, token, username, password)
    except TimkitError as e:
        if e.status != 400 and e.errcode != Codes.USER_IN_USE:
            raise
        return _account_form(request, None, token, username=username, problem=e.message)
    return page(request, "enrol.html", enrolment=enrolment, qr_svg=qr_svg(enrolment.otpauth_uri))


async def account_totp(request: web.Request) -> web.StreamResponse:
    """``POST /account/totp``."""
    fields = await form(request)
    ctx = context(request)
    admin = await ctx.blocking(
        accounts.confirm_totp, ctx, fields.get("username", "")[:64], fields.get("code", "")[:16]
    )
    return page(request, "active.html", username=admin.username)


async def login_page(request: web.Request) -> web.StreamResponse:
    """``GET /login``."""
    if await current_admin(request) is not None:
        raise redirect("/dashboard")
    return page(request, "login.html", username="", problem="")


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /login``: password + TOTP; the failure page says no more than the API does.

    Rate-limited per client IP (:mod:`~timkit.registration.accounts.ratelimit`): the form
    comes back with the wait, status 429."""
    fields = await form(request)
    ctx = context(request)
    t = translator(language(request))
    username = fields.get("username", "")[:64]
    try:
        ratelimit.check(request, "login")
        session = await ctx.blocking(
            accounts.login,
            ctx,
            username,
            fields.get("password", "")[:1024],
            fields.get("otp", "")[:16],
        )
    except RateLimited as e:
        seconds = max(math.ceil(e.retry_after), 1)
        problem = t("login.rate_limited", seconds=seconds)
        return page(request, "login.html", e.status, username=username, problem=problem)
    except TimkitError as e:
        if e.status == 429:
            minutes = max(int(e.extra.get("retry_after_ms", 60000)) // 60000, 1)
            problem = t("login.locked", minutes=minutes)
        elif e.status in (401, 403):
            problem = t("login.failed") if e.status == 401 else e.message
        else:
            raise
        return page(request, "login.html", e.status, username=username, problem=problem)
    response = redirect("/dashboard")
    set_session_cookie(response, session.token)
    raise response


async def login_session(request: web.Request) -> web.StreamResponse:
    """``POST /login/session``: make a valid API session (WebAuthn login) the cookie."""
    fields = await form(request)
    ctx = context(request)
    token = fields.get("access_token", "")[:128]
    settings = ctx.config.accounts

    def valid() -> bool:
        with ctx.db.write() as tx:
            return sessions.lookup(tx, token, int(time.time()), settings.session_idle) is not None

    if not token or not await ctx.blocking(valid):
        raise redirect("/login")
    response = redirect("/dashboard")
    set_session_cookie(response, token)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /logout``."""
    await form(request)
    ctx = context(request)
    admin = await current_admin(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    if admin is not None and token:
        await ctx.blocking(accounts.logout, ctx, token, admin)
    response = redirect("/")
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, samesite="Strict")
    raise response


@logged_in
async def dashboard(request: web.Request, admin: Admin) -> web.StreamResponse:
    """``GET /dashboard``."""
    services = await provisioning.list_services(context(request), admin)
    return page(request, "dashboard.html", admin=admin, services=services)


@logged_in
async def provision(request: web.Request, admin: Admin) -> web.StreamResponse:
    """``POST /services``."""
    fields = await form(request)
    view = await provisioning.provision(context(request), admin, fields.get("domain", "")[:253])
    raise redirect(f"/services/{view.domain}")


@logged_in
async def service(request: web.Request, admin: Admin) -> web.StreamResponse:
    """``GET /services/{domain}``."""
    view = await provisioning.get_service(context(request), admin, request.match_info["domain"])
    return page(request, "service.html", admin=admin, service=view)


@logged_in
async def deprovision_page(request: web.Request, admin: Admin) -> web.StreamResponse:
    """``GET /services/{domain}/delete``."""
    view = await provisioning.get_service(context(request), admin, request.match_info["domain"])
    return page(request, "deprovision.html", admin=admin, domain=view.domain)


@logged_in
async def deprovision(request: web.Request, admin: Admin) -> web.StreamResponse:
    """``POST /services/{domain}/delete``: only when the typed domain matches."""
    fields = await form(request)
    domain = request.match_info["domain"]
    if fields.get("confirm", "").strip() != domain:
        t = translator(language(request))
        raise TimkitError(400, Codes.INVALID_PARAM, t("deprovision.mismatch"))
    view = await provisioning.deprovision(context(request), admin, domain)
    raise redirect(f"/services/{view.domain}")


@logged_in
async def invite(request: web.Request, admin: Admin) -> web.StreamResponse:
    """``POST /invitations``."""
    await form(request)
    ctx = context(request)
    token, lifetime = await ctx.blocking(accounts.invite, ctx, admin)
    link = f"{ctx.base}/register?invitation={token}"
    return page(request, "invited.html", admin=admin, link=link, hours=max(lifetime // 3600, 1))


def setup(app: web.Application) -> None:
    """Add the pages and ``/static/`` to ``app``."""
    router = app.router
    router.add_get("/", start)
    router.add_post("/oidc/start", oidc_start)
    router.add_get("/oidc/callback", oidc_callback)
    router.add_post("/kim/start", kim_start)
    router.add_get("/kim/confirm", kim_confirm_page)
    router.add_post("/kim/confirm", kim_confirm)
    router.add_get("/register", register_invited)
    router.add_post("/account/setup", account_setup)
    router.add_post("/account/totp", account_totp)
    router.add_get("/login", login_page)
    router.add_post("/login", login)
    router.add_post("/login/session", login_session)
    router.add_post("/logout", logout)
    router.add_get("/dashboard", dashboard)
    router.add_post("/services", provision)
    router.add_get("/services/{domain}", service)
    router.add_get("/services/{domain}/delete", deprovision_page)
    router.add_post("/services/{domain}/delete", deprovision)
    router.add_post("/invitations", invite)
    router.add_static("/static/", STATIC, append_version=False)
