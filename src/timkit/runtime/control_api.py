"""The supervisor's control API: the HTTP face of the embedded provisioning backend.

Served by ``timkit supervise`` on ``http://<runtime.bind>:<runtime.control_port>`` (loopback).
Every route except ``GET /health`` requires ``Authorization: Bearer <token>`` with the token
of ``<data>/run/control-token``. Bodies are JSON; errors are ``{"errcode", "error"}``::

    GET    /health             200 {"status": "ok"}                        (no token)
    GET    /services           200 {"services": [ServiceStatus, ...]}
    PUT    /services/{domain}  {"organisation": str}
                               201 ServiceStatus (created, phase "starting")
                               200 ServiceStatus (exists already with that organisation)
                               400 M_INVALID_PARAM (domain or organisation), M_NOT_JSON,
                                   M_BAD_JSON; 409 TIMKIT_CONFLICT (other organisation)
    GET    /services/{domain}  200 ServiceStatus | 404 M_NOT_FOUND
    DELETE /services/{domain}  200 {"domain": str, "removed": true} once both processes
                               have stopped and route, record and data are gone;
                               404 M_NOT_FOUND when not provisioned (nothing to do)

    401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN without a valid token (also for unknown paths).
    404 M_UNRECOGNIZED for an unknown path, 405 M_UNRECOGNIZED (with ``Allow``) for a method
    a path does not serve, 500 M_UNKNOWN (JSON, nothing of the cause) when a handler fails.

``ServiceStatus`` is :class:`timkit.runtime.services.ServiceStatus`. ``PUT`` returns as
soon as the processes are started; callers poll ``GET /services/{domain}`` until
``healthy``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from timkit.core import jsonbody
from timkit.core.errors import Codes, TimkitError
from timkit.core.web import Handler, guard, health, json_response, matrix_http_code, start_app
from timkit.runtime.backend import EmbeddedBackend

logger = logging.getLogger(__name__)

BACKEND_KEY = web.AppKey("runtime.backend", EmbeddedBackend)
TOKEN_KEY = web.AppKey("runtime.control_token", str)
MAX_BODY = 64 * 1024
INTERNAL = TimkitError(500, Codes.UNKNOWN, "internal error in the control API")
"""What a client sees of a handler's unexpected failure (the traceback is logged)."""


def _json(body: Any, status: int = 200) -> web.Response:
    return json_response(body, status)


def render_error(_request: web.Request, error: TimkitError) -> web.Response:
    """``error`` as a Matrix error body."""
    return _json(error.to_matrix(), error.status)


@web.middleware
async def _edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authorise every request but ``/health``; render every error as Matrix JSON."""

    async def authorised(request: web.Request) -> web.StreamResponse:
        if request.path != "/health":
            _authorise(request)
        try:
            return await handler(request)
        except TimkitError as e:
            if e.status >= 500:
                logger.error("%s %s: %s", request.method, request.path, e)
            raise

    return await guard(
        request,
        authorised,
        render_error,
        http_code=matrix_http_code,
        internal=INTERNAL,
        logger=logger,
    )


def _authorise(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TimkitError(401, Codes.MISSING_TOKEN, "a bearer token is required")
    expected = request.app[TOKEN_KEY]
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise TimkitError(401, Codes.UNKNOWN_TOKEN, "the bearer token is not valid")


def _backend(request: web.Request) -> EmbeddedBackend:
    return request.app[BACKEND_KEY]


async def _list(request: web.Request) -> web.Response:
    services = _backend(request).services()
    return _json({"services": [s.model_dump() for s in services]})


async def _get(request: web.Request) -> web.Response:
    domain = request.match_info["domain"]
    status = _backend(request).status(domain)
    if status is None:
        raise TimkitError(404, Codes.NOT_FOUND, f"no Messenger-Service {domain!r}")
    return _json(status.model_dump())


async def _put(request: web.Request) -> web.Response:
    domain = request.match_info["domain"]
    try:
        body = await jsonbody.read_json(request, MAX_BODY)
    except jsonbody.JsonBodyError as e:
        raise e.to_error(jsonbody.MATRIX_CODES) from None
    if not isinstance(body.get("organisation"), str):
        raise TimkitError(
            400, Codes.BAD_JSON, 'the body must be {"organisation": "<display name>"}'
        )
    status, created = await _backend(request).ensure(domain, body["organisation"])
    return _json(status.model_dump(), 201 if created else 200)


async def _delete(request: web.Request) -> web.Response:
    domain = request.match_info["domain"]
    if not await _backend(request).remove(domain):
        raise TimkitError(404, Codes.NOT_FOUND, f"no Messenger-Service {domain!r}")
    return _json({"domain": domain, "removed": True})


def control_app(backend: EmbeddedBackend, token: str) -> web.Application:
    """The control API over ``backend``, accepting ``token`` (see the module docstring)."""
    app = web.Application(middlewares=[_edge], client_max_size=MAX_BODY)
    app[BACKEND_KEY] = backend
    app[TOKEN_KEY] = token
    app.router.add_get("/health", health)
    app.router.add_get("/services", _list)
    app.router.add_get("/services/{domain}", _get)
    app.router.add_put("/services/{domain}", _put)
    app.router.add_delete("/services/{domain}", _delete)
    return app


async def start_control_api(
    backend: EmbeddedBackend, token: str, host: str, port: int
) -> web.AppRunner:
    """Serve the control API on ``host:port``; the caller cleans the returned runner up.

    Raises:
        OSError: when the port cannot be bound.
    """
    runner = await start_app(control_app(backend, token), host, port)
    logger.info("control API listening on http://%s:%d", host, port)
    return runner
