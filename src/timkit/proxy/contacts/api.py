"""I_TiMessengerContactManagement 1.0.2: the Freigabeliste API of the Messenger-Proxy.

A sub-application the proxy mounts at :data:`PREFIX` on its inbound listener::

    app.add_subapp(PREFIX, contacts_app(service, validator))

    GET    /                  InfoObject (version "1.0.2")
    GET    /contacts          {"contacts": [Contact]}
    POST   /contacts          Contact → 200 Contact; 409 when a setting for mxid exists
    PUT    /contacts          Contact → 200 Contact; 404 when none exists
    GET    /contacts/{mxid}   200 Contact; 404
    DELETE /contacts/{mxid}   204; 404

Every operation needs ``Authorization: Bearer <Matrix OpenID token>`` of a user of this
Messenger-Service (checked at the homeserver, :class:`~timkit.proxy.openid.OpenIdValidator`);
an ``Mxid`` header (TI-M Pro makes it required) must name that same user. A user only ever
sees and changes their own settings. ``{mxid}`` may come percent-encoded (``%40a%3Ab``) or
raw. A request the API cannot read unambiguously is refused before any handler runs: a
target :func:`~timkit.core.request_target.parse_target` refuses (absolute-form, control
characters, dot segments, ``//``, bad escapes) is 400 ``M_INVALID_PARAM``; ``Authorization``
given twice is 401 ``M_UNAUTHORIZED``, ``Mxid`` given twice 400 ``M_INVALID_PARAM``. Every
error, routing errors included, is the API's ``Error`` object ``{"errorCode",
"errorMessage"}``, rendered by :func:`render_error` through :func:`timkit.core.web.guard`:
an unknown path is 404 ``M_UNRECOGNIZED``, a method a path does not serve 405
``M_UNRECOGNIZED`` with ``Allow``, a failure 500 ``M_UNKNOWN`` naming nothing of its cause.

Mount the sub-app before any catch-all route of the outer app: aiohttp resolves resources in
the order they were added, and a catch-all added first would take these paths.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from timkit.core import jsonbody
from timkit.core.errors import Codes, TimkitError, UpstreamError
from timkit.core.request_target import UnparsableRequest, parse_target, single_header
from timkit.core.web import Handler, guard, json_response, matrix_http_code
from timkit.proxy.contacts.handlers import (
    Contact,
    ContactsService,
    canonical_mxid,
    parse_contact,
)
from timkit.proxy.openid import OpenIdValidator

log = logging.getLogger(__name__)

PREFIX = "/tim-contact-mgmt/v1.0.2"
"""Where the proxy mounts :func:`contacts_app` (the yaml's server URL path)."""
VERSION = "1.0.2"
TITLE = "Contact Management des TI-Messengers"
MAX_BODY = 64 * 1024
"""Largest request body in bytes (a ``Contact`` is a few hundred)."""

UNAMBIGUOUS_RULE = "Messenger-Proxy: unambiguous request (issue 14)"
"""The rule an unparsable target or a repeated header breaks (as on the inbound listener)."""
INTERNAL = TimkitError(500, Codes.UNKNOWN, "internal error")
"""What a client sees of a handler's unexpected failure (the traceback is logged)."""

SERVICE_KEY = web.AppKey("proxy.contacts.service", ContactsService)
VALIDATOR_KEY = web.AppKey("proxy.contacts.validator", OpenIdValidator)
INFO_KEY = web.AppKey("proxy.contacts.info", dict)


def render_error(_request: web.Request, error: TimkitError) -> web.Response:
    """``error`` as the API's ``Error`` object (a 401 with its ``WWW-Authenticate``)."""
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tim-contact-mgmt"')
    return json_response(
        {"errorCode": str(error.errcode), "errorMessage": error.describe()},
        error.status,
        headers=headers,
    )


@web.middleware
async def _edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await _guarded(request, handler)
    if response.status == 404 and request.method in ("GET", "HEAD") and _is_root(request):
        response = await _guarded(request, info)  # the mount point without its slash
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``handler(request)`` with every error rendered as the ``Error`` object."""

    async def checked(request: web.Request) -> web.StreamResponse:
        _check_target(request)
        try:
            return await handler(request)
        except TimkitError as e:
            if e.status >= 500:
                log.warning("%s %s: %s", request.method, request.path, e.describe())
            raise

    return await guard(
        request, checked, render_error, http_code=matrix_http_code, internal=INTERNAL, logger=log
    )


def _check_target(request: web.Request) -> None:
    """Refuse a request target that cannot be read unambiguously (400)."""
    try:
        parse_target(request.raw_path)
    except UnparsableRequest as e:
        raise TimkitError(
            400, Codes.INVALID_PARAM, f"request refused: {e}", requirement=UNAMBIGUOUS_RULE
        ) from None


def _single_header(request: web.Request, name: str, status: int, errcode: str) -> str | None:
    """The one value of header ``name`` (None when absent); ``status`` when it is repeated."""
    try:
        return single_header(request.headers, name)
    except UnparsableRequest as e:
        raise TimkitError(status, errcode, str(e), requirement=UNAMBIGUOUS_RULE) from None


def _is_root(request: web.Request) -> bool:
    """Whether ``request`` is for the mount point without its trailing slash."""
    root = str(request.app.router["info"].url_for())
    return request.path + "/" == root


async def authenticate(request: web.Request) -> str:
    """The user id of the OpenID token in ``Authorization``, checked against ``Mxid``.

    Raises:
        TimkitError: 401 without a usable bearer token, with ``Authorization`` given twice or
            when the homeserver rejects the token; 403 when ``Mxid`` names another user (or
            the user is not of this service); 400 when ``Mxid`` is given twice; 502 when the
            homeserver gives no verdict.
    """
    header = _single_header(request, "Authorization", 401, Codes.UNAUTHORIZED) or ""
    claimed = _single_header(request, "Mxid", 400, Codes.INVALID_PARAM)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TimkitError(
            401,
            Codes.MISSING_TOKEN,
            "Authorization: Bearer <Matrix OpenID token> is required",
        )
    sub = await request.app[VALIDATOR_KEY].validate(token)
    try:
        owner = canonical_mxid(sub)
    except TimkitError as e:
        raise UpstreamError(f"the homeserver returned a malformed user id {sub!r}") from e
    if claimed is not None:
        try:
            claimed_id = canonical_mxid(claimed.strip(), "Mxid header")
        except TimkitError as e:
            raise TimkitError(403, Codes.FORBIDDEN, e.describe()) from e
        if claimed_id != owner:
            raise TimkitError(
                403,
                Codes.FORBIDDEN,
                "the Mxid header must name the user of the Matrix OpenID token",
            )
    return owner


async def _body(request: web.Request) -> Any:
    try:
        raw = await jsonbody.read_body(request, MAX_BODY, what="the body")
        if not raw.strip():
            raise TimkitError(400, Codes.NOT_JSON, "the body must be a Contact (JSON)")
        return jsonbody.parse_json(raw, what="the body")
    except jsonbody.JsonBodyError as e:
        raise e.to_error(jsonbody.MATRIX_CODES) from None


def _path_mxid(request: web.Request) -> str:
    """``{mxid}`` of the path: aiohttp decodes it once; a doubly encoded ``@`` once more."""
    value = request.match_info["mxid"]
    if value[:3].lower() == "%40":
        value = unquote(value)
    return value


async def unrouted(request: web.Request) -> web.StreamResponse:
    """Last route of the sub-app: 405 (with ``Allow``) or 404 for what no route serves.

    It keeps every path under the mount point inside the sub-app, so its middleware renders
    the ``Error`` object even when the outer app has a catch-all route (the proxy's).
    """
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            _match, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


async def info(request: web.Request) -> web.Response:
    """``GET /`` (getInfo): the InfoObject."""
    await authenticate(request)
    return json_response(request.app[INFO_KEY])


async def get_contacts(request: web.Request) -> web.Response:
    """``GET /contacts`` (getContacts): all of the user's settings."""
    owner = await authenticate(request)
    contacts = await request.app[SERVICE_KEY].list_contacts(owner)
    return json_response({"contacts": [c.to_json() for c in contacts]})


async def _write_contact(
    request: web.Request,
    write: Callable[[ContactsService, str, Contact], Awaitable[Contact]],
    done: str,
) -> web.Response:
    """Authenticate, parse the body's Contact, ``write`` it and answer it (``done`` logged)."""
    owner = await authenticate(request)
    contact = parse_contact(await _body(request))
    written = await write(request.app[SERVICE_KEY], owner, contact)
    log.debug("contact setting of %s for %s %s", owner, written.mxid, done)
    return json_response(written.to_json())


async def create_contact(request: web.Request) -> web.Response:
    """``POST /contacts`` (createContactSetting)."""
    return await _write_contact(request, ContactsService.create_contact, "created")


async def update_contact(request: web.Request) -> web.Response:
    """``PUT /contacts`` (updateContactSetting)."""
    return await _write_contact(request, ContactsService.update_contact, "updated")


async def get_contact(request: web.Request) -> web.Response:
    """``GET /contacts/{mxid}`` (getContact)."""
    owner = await authenticate(request)
    contact = await request.app[SERVICE_KEY].get_contact(owner, _path_mxid(request))
    return json_response(contact.to_json())


async def delete_contact(request: web.Request) -> web.Response:
    """``DELETE /contacts/{mxid}`` (deleteContactSetting)."""
    owner = await authenticate(request)
    mxid = _path_mxid(request)
    await request.app[SERVICE_KEY].delete_contact(owner, mxid)
    log.debug("contact setting of %s for %s deleted", owner, mxid)
    return web.Response(status=204)


def contacts_app(
    store: ContactsService,
    validator: OpenIdValidator,
    *,
    description: str | None = None,
    contact: str | None = None,
) -> web.Application:
    """The API as a sub-application, to mount with ``app.add_subapp(PREFIX, …)``.

    Args:
        store: the Freigabeliste.
        validator: checks the callers' Matrix OpenID tokens.
        description: ``InfoObject.description``; default names the Messenger-Service.
        contact: ``InfoObject.contact``; default names the operator of the service.
    """
    app = web.Application(middlewares=[_edge])
    app[SERVICE_KEY] = store
    app[VALIDATOR_KEY] = validator
    server = validator.server_name
    app[INFO_KEY] = {
        "title": TITLE,
        "description": description or f"{TITLE}. Messenger-Service: {server}",
        "contact": contact or f"Betreiber des Messenger-Service {server}",
        "version": VERSION,
    }
    app.router.add_get("/", info, name="info")
    app.router.add_get("/contacts", get_contacts)
    app.router.add_post("/contacts", create_contact)
    app.router.add_put("/contacts", update_contact)
    app.router.add_get("/contacts/{mxid}", get_contact)
    app.router.add_delete("/contacts/{mxid}", delete_contact)
    app.router.add_route("*", "/{tail:.*}", unrouted)
    return app
