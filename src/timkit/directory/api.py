"""HTTP edge of the FHIR-Directory: FHIR R4 RESTful API over aiohttp.

Parses requests, calls :class:`Directory` in a thread pool (database work is blocking) and
renders results as ``application/fhir+json``. Every error, including unknown routes and
malformed bodies, is rendered here and only here as an ``OperationOutcome``.

Every route but ``/health`` needs ``Authorization: Bearer <token>`` with the directory's
token (:mod:`timkit.directory.access`; compared in constant time, the header given once):
only the FHIR-Proxy may talk to the directory, whichever host it runs on. Without it the
answer is 401 (400 when the header is given twice), before any route is looked at.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from typing import Any, TypeVar

import orjson
from aiohttp import web

from timkit.core.errors import IssueType, TimkitError
from timkit.core.fhir import parse_resource_json
from timkit.core.request_target import UnparsableRequest
from timkit.core.web import (
    FHIR_INTERNAL,
    Handler,
    edge_middleware,
    fhir_http_code,
    health,
    json_response,
)
from timkit.directory.access import presented_token, token_matches
from timkit.directory.capability import capability_statement
from timkit.directory.handlers import (
    Directory,
    Outcome,
    etag,
    history_bundle,
    searchset,
)
from timkit.directory.storage.store import Stored

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
_FORM = "application/x-www-form-urlencoded"
log = logging.getLogger(__name__)
T = TypeVar("T")

DIRECTORY_KEY = web.AppKey("directory", Directory)
EXECUTOR_KEY = web.AppKey("executor", ThreadPoolExecutor)
BASE_URL_KEY = web.AppKey("base_url", str)
TOKEN_KEY = web.AppKey("directory_token", str)
UNAUTHENTICATED_PATHS = frozenset({"/health"})


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(body, status, headers, content_type=FHIR_JSON, charset="utf-8")


def _render_error(_request: web.Request, error: TimkitError) -> web.Response:
    return _json(error.to_operation_outcome(), error.status)


_errors = edge_middleware(
    _render_error, http_code=fhir_http_code, internal=FHIR_INTERNAL, logger=log
)


@web.middleware
async def _authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse every request but ``/health`` without the directory's bearer token (401)."""
    if request.path in UNAUTHENTICATED_PATHS and request.method in ("GET", "HEAD"):
        return await handler(request)
    try:
        presented = presented_token(request.headers)
    except UnparsableRequest as e:
        raise TimkitError(400, IssueType.INVALID, str(e)) from None
    if not token_matches(presented, request.app[TOKEN_KEY]):
        error = TimkitError(
            401,
            IssueType.FORBIDDEN if presented else IssueType.REQUIRED,
            "the FHIR-Directory answers only its FHIR-Proxy: send Authorization: Bearer"
            " <the directory token> (token_file)"
            + (" - the token given is not it" if presented else ""),
        )
        response = _render_error(request, error)
        response.headers["WWW-Authenticate"] = 'Bearer realm="fhir-directory"'
        return response
    return await handler(request)


async def _run(request: web.Request, function: Callable[[], T]) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR_KEY], function)


def _directory(request: web.Request) -> Directory:
    return request.app[DIRECTORY_KEY]


def _base(request: web.Request) -> str:
    return request.app[BASE_URL_KEY] or f"{request.scheme}://{request.host}"


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type not in _JSON_TYPES:
        raise TimkitError(
            415,
            IssueType.NOT_SUPPORTED,
            f"Content-Type {request.content_type!r} is not supported; send application/fhir+json",
        )
    return parse_resource_json(await request.read())


def _http_date(instant: str) -> str:
    """An ISO instant (``meta.lastUpdated``) as an HTTP-date (RFC 9110), as Last-Modified needs."""
    return format_datetime(datetime.fromisoformat(instant).astimezone(UTC), usegmt=True)


def _version_headers(stored: Stored, base: str) -> dict[str, str]:
    return {
        "ETag": etag(stored),
        "Last-Modified": _http_date(stored.last_updated),
        "Location": f"{base}/{stored.type}/{stored.id}/_history/{stored.version}",
    }


def _outcome(outcome: Outcome, base: str) -> web.Response:
    return _json(outcome.stored.resource(), outcome.status, _version_headers(outcome.stored, base))


def _strict(request: web.Request) -> bool:
    return "handling=strict" in request.headers.get("Prefer", "").replace(" ", "")


async def metadata(request: web.Request) -> web.Response:
    """The CapabilityStatement."""
    return _json(capability_statement(_base(request)))


async def read(request: web.Request) -> web.Response:
    """``GET [base]/Type/id``."""
    info = request.match_info
    stored = await _run(request, partial(_directory(request).read, info["type"], info["id"]))
    return _json(orjson.Fragment(stored.body), headers=_version_headers(stored, _base(request)))


async def vread(request: web.Request) -> web.Response:
    """``GET [base]/Type/id/_history/vid``."""
    info = request.match_info
    function = partial(_directory(request).vread, info["type"], info["id"], info["vid"])
    stored = await _run(request, function)
    return _json(stored.resource(), headers=_version_headers(stored, _base(request)))


async def history(request: web.Request) -> web.Response:
    """``GET [base]/Type/id/_history``."""
    info = request.match_info
    versions = await _run(request, partial(_directory(request).history, info["type"], info["id"]))
    return _json(history_bundle(versions, _base(request)))


async def search(request: web.Request) -> web.Response:
    """``GET [base]/Type?…`` and ``POST [base]/Type/_search`` (form body)."""
    pairs = list(request.query.items())
    if request.method == "POST":
        if request.content_type != _FORM and request.can_read_body:
            raise TimkitError(415, IssueType.NOT_SUPPORTED, f"_search takes {_FORM}")
        pairs += list((await request.post()).items())  # type: ignore[arg-type]
    directory = _directory(request)
    function = partial(
        directory.search,
        request.match_info["type"],
        [(k, str(v)) for k, v in pairs],
        strict=_strict(request),
    )
    query, result = await _run(request, function)
    return _json(searchset(query, result, _base(request), raw=True))


async def create(request: web.Request) -> web.Response:
    """``POST [base]/Type`` (``If-None-Exist`` for a conditional create)."""
    body = await _body(request)
    function = partial(
        _directory(request).create,
        request.match_info["type"],
        body,
        if_none_exist=request.headers.get("If-None-Exist"),
    )
    return _outcome(await _run(request, function), _base(request))


async def update(request: web.Request) -> web.Response:
    """``PUT [base]/Type/id`` (``If-Match`` for optimistic locking)."""
    body = await _body(request)
    info = request.match_info
    function = partial(
        _directory(request).update,
        info["type"],
        info["id"],
        body,
        if_match=request.headers.get("If-Match"),
    )
    return _outcome(await _run(request, function), _base(request))


async def delete(request: web.Request) -> web.Response:
    """``DELETE [base]/Type/id``."""
    info = request.match_info
    await _run(request, partial(_directory(request).delete, info["type"], info["id"]))
    return web.Response(status=204)


async def bundle(request: web.Request) -> web.Response:
    """``POST [base]`` with a batch or transaction Bundle."""
    body = await _body(request)
    function = partial(_directory(request).bundle, body, _base(request))
    return _json(await _run(request, function))


def create_app(
    directory: Directory, *, token: str, workers: int = 8, base_url: str = ""
) -> web.Application:
    """The aiohttp application serving ``directory``.

    Args:
        directory: the store.
        token: the bearer token every request but ``/health`` must carry.
        workers: threads for database work.
        base_url: public base URL for links; empty = derived from each request.

    Raises:
        ValueError: ``token`` is empty.
    """
    if not token:
        raise ValueError("the FHIR-Directory needs a token")
    app = web.Application(middlewares=[_errors, _authenticated], client_max_size=256 * 1024 * 1024)
    app[DIRECTORY_KEY] = directory
    app[TOKEN_KEY] = token
    app[EXECUTOR_KEY] = ThreadPoolExecutor(workers, thread_name_prefix="directory")
    app[BASE_URL_KEY] = base_url.rstrip("/")
    app.router.add_get("/health", health)
    app.router.add_get("/metadata", metadata)
    app.router.add_post("/", bundle)
    app.router.add_get("/{type}", search)
    app.router.add_post("/{type}/_search", search)
    app.router.add_post("/{type}", create)
    app.router.add_get("/{type}/{id}", read)
    app.router.add_put("/{type}/{id}", update)
    app.router.add_delete("/{type}/{id}", delete)
    app.router.add_get("/{type}/{id}/_history", history)
    app.router.add_get("/{type}/{id}/_history/{vid}", vread)

    async def shutdown(app: web.Application) -> None:
        app[EXECUTOR_KEY].shutdown(wait=True)

    app.on_cleanup.append(shutdown)
    return app
