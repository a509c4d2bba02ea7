"""HTTP edge of the push receiver: push resources, the management API and the page.

Routes::

    GET    /health                              liveness
    GET    /                                    recent pushes (refreshes itself)
    POST   /api/webpush/subscriptions           {"application_server_key"?, "label"?} → 201
    DELETE /api/webpush/subscriptions/{id}      unsubscribe (later pushes: 410)
    POST   /api/unifiedpush/endpoints           → 201 {"id", "endpoint"}
    DELETE /api/unifiedpush/endpoints/{id}      remove (later pushes: 404)
    POST   /wp/{id}                             WebPush (RFC 8030/8291/8292) → 201 + Location
    POST   /up/{id}                             UnifiedPush (SERV_1.2.0) → 201
    GET    /api/pushes[?since&target&wait]      {"pushes": [...], "last_seq"}; long-poll ≤ 60 s
    GET    /api/pushes/{seq}                    one push
    GET    /api/faults · POST /api/faults · DELETE /api/faults     fault injection
    GET    /api/attempts[?target=]              delivery attempts and their statuses

Errors are rendered here only: ``{"errcode", "error"}`` JSON, an HTML page for ``/``. Every
delivery attempt to ``/wp/`` and ``/up/`` is counted with the status it was answered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from timkit.core import jsonbody
from timkit.core.config import StrictModel
from timkit.core.errors import Codes, TimkitError
from timkit.core.web import (
    SCRIPTLESS_PAGE_HEADERS,
    Handler,
    edge_middleware,
    health,
    html_response,
    json_object,
    json_response,
    read_stream,
)
from timkit.pushreceiver import pages
from timkit.pushreceiver.devices import Devices
from timkit.pushreceiver.faults import Attempts, Fault, FaultRequest, Faults
from timkit.pushreceiver.inbox import Inbox, Received
from timkit.pushreceiver.webpush import VapidVerifier, decrypt

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

MAX_WAIT = 60.0
URGENCIES = ("very-low", "low", "normal", "high")
DELIVERY_ROUTES = frozenset({"webpush.push", "unifiedpush.push"})


@dataclass
class ReceiverState:
    """What the handlers work on.

    Attributes:
        inbox: where received pushes land.
        devices: the subscriptions and endpoints handed out.
        max_payload: largest push body accepted, in bytes.
        faults: armed fault injections.
        attempts: delivery attempts per target.
        vapid: checks the pushes' VAPID tokens.
    """

    inbox: Inbox
    devices: Devices
    max_payload: int
    faults: Faults = field(default_factory=Faults)
    attempts: Attempts = field(default_factory=Attempts)
    vapid: VapidVerifier = field(default_factory=VapidVerifier)


STATE_KEY = web.AppKey("pushreceiver.state", ReceiverState)


class SubscribeRequest(StrictModel):
    """Body of ``POST /api/webpush/subscriptions`` (optional)."""

    application_server_key: str | None = Field(default=None, min_length=1)
    label: str | None = Field(default=None, min_length=1, max_length=255)
    """Whose device this is (e.g. the MXID), recorded with each push as ``meta.label``."""


def _state(request: web.Request) -> ReceiverState:
    return request.app[STATE_KEY]


def render_error(request: web.Request, error: TimkitError) -> web.Response:
    """``error`` as a page for ``/``, as JSON everywhere else."""
    if request.path == "/":
        return html_response(pages.error_page(error.status, error.describe()), error.status)
    return json_response(error.to_matrix(), error.status)


@web.middleware
async def _count_attempts(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.match_info.route.name in DELIVERY_ROUTES:
        _state(request).attempts.note(request.match_info["id"], response.status)
    return response


_edge = edge_middleware(render_error, logger=log, headers=SCRIPTLESS_PAGE_HEADERS)


def _parse(model: type[M], body: bytes, *, optional: bool = False) -> M:
    """``body`` as ``model``; an empty body is ``model()`` when ``optional``."""
    if optional and not body.strip():
        return model()
    try:
        jsonbody.parse_json_object(body)  # names why a body is unusable (not UTF-8, depth, …)
    except jsonbody.JsonBodyError as e:
        raise e.to_error(
            {**jsonbody.MATRIX_CODES, jsonbody.Problem.NOT_OBJECT: Codes.NOT_JSON}
        ) from None
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise TimkitError(400, Codes.BAD_JSON, f"{where}: {first['msg']}") from e


async def _body(request: web.Request, limit: int) -> bytes:
    """The request body; TimkitError 413 when it is longer than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise TimkitError(413, Codes.TOO_LARGE, f"push body larger than {limit} bytes")
    try:
        return await read_stream(request.content, limit)
    except ValueError as e:
        raise TimkitError(413, Codes.TOO_LARGE, f"push body larger than {limit} bytes") from e


def payload_of(data: bytes) -> dict[str, Any]:
    """A push body as the inbox keeps it: the JSON object, else ``{"text": …}``."""
    if not data:
        return {}
    document = json_object(data)
    return document if document is not None else {"text": data.decode("utf-8", "replace")}


def _fault_response(fault: Fault) -> web.Response:
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    body = {"errcode": Codes.UNKNOWN, "error": f"injected fault: {fault.status}"}
    return json_response(body, fault.status, headers)


def _created(state: ReceiverState, item: Received) -> web.Response:
    location = f"{state.devices.public_url}/api/pushes/{item.seq}"
    return web.Response(status=201, headers={"Location": location})


async def subscribe_webpush(request: web.Request) -> web.Response:
    """Create a WebPush subscription (the browser's ``PushManager.subscribe()``)."""
    body = _parse(SubscribeRequest, await request.read(), optional=True)
    subscription = _state(request).devices.subscribe_webpush(
        body.application_server_key, body.label
    )
    return json_response(subscription, 201)


async def unsubscribe_webpush(request: web.Request) -> web.Response:
    """End a WebPush subscription."""
    _state(request).devices.unsubscribe_webpush(request.match_info["id"])
    return json_response({})


async def create_unifiedpush_endpoint(request: web.Request) -> web.Response:
    """Create a UnifiedPush endpoint."""
    return json_response(_state(request).devices.create_unifiedpush_endpoint(), 201)


async def delete_unifiedpush_endpoint(request: web.Request) -> web.Response:
    """Remove a UnifiedPush endpoint."""
    _state(request).devices.delete_unifiedpush_endpoint(request.match_info["id"])
    return json_response({})


def _push_headers(request: web.Request) -> dict[str, Any]:
    """``ttl``, ``urgency`` and ``topic`` of a WebPush request (RFC 8030 §5.2 to 5.4)."""
    ttl = request.headers.get("TTL", "").strip()
    if not ttl.isdigit():
        raise TimkitError(400, Codes.INVALID_PARAM, "TTL header missing or not a number")
    urgency = request.headers.get("Urgency", "normal").strip().lower()
    if urgency not in URGENCIES:
        raise TimkitError(
            400, Codes.INVALID_PARAM, f"Urgency {urgency!r} is not one of {URGENCIES}"
        )
    topic = request.headers.get("Topic")
    if topic is not None and not (0 < len(topic) <= 32):
        raise TimkitError(400, Codes.INVALID_PARAM, "Topic must be 1 to 32 characters")
    return {"ttl": int(ttl), "urgency": urgency, "topic": topic}


async def webpush_push(request: web.Request) -> web.Response:
    """Receive a WebPush message: check VAPID, decrypt, record; 201 with ``Location``."""
    state = _state(request)
    target = request.match_info["id"]
    if fault := state.faults.take(target):
        return _fault_response(fault)
    subscription = state.devices.webpush(target)
    claims = state.vapid.verify(
        request.headers.get("Authorization", ""),
        state.devices.audience,
        subscription.application_server_key,
    )
    meta = _push_headers(request)
    body = await _body(request, state.max_payload)
    plain = b""
    if body:
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding != "aes128gcm":
            raise TimkitError(
                415, Codes.INVALID_PARAM, f"Content-Encoding {encoding!r} is not aes128gcm"
            )
        plain = decrypt(subscription, body)
    if subscription.label is not None:
        meta["label"] = subscription.label
    item = await state.inbox.record(
        "webpush", target, payload_of(plain), {**meta, "sub": claims["sub"]}
    )
    log.info("webpush push %d for %s (%d bytes)", item.seq, target, len(body))
    return _created(state, item)


async def unifiedpush_push(request: web.Request) -> web.Response:
    """Receive a UnifiedPush message (1 to ``max_payload`` bytes); 201."""
    state = _state(request)
    target = request.match_info["id"]
    if fault := state.faults.take(target):
        return _fault_response(fault)
    state.devices.check_unifiedpush(target)
    body = await _body(request, state.max_payload)
    if not body:
        raise TimkitError(400, Codes.INVALID_PARAM, "a UnifiedPush message needs a body")
    item = await state.inbox.record("unifiedpush", target, payload_of(body))
    log.info("unifiedpush push %d for %s (%d bytes)", item.seq, target, len(body))
    return _created(state, item)


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        raise TimkitError(400, Codes.INVALID_PARAM, f"{name} must be a non-negative integer")
    return int(raw)


def _wait_query(request: web.Request) -> float:
    raw = request.query.get("wait", "")
    try:
        wait = float(raw) if raw else 0.0
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT:
        raise TimkitError(400, Codes.INVALID_PARAM, f"wait must be 0 to {MAX_WAIT:g} seconds")
    return wait


async def list_pushes(request: web.Request) -> web.Response:
    """Pushes after ``since`` (for ``target``), waiting up to ``wait`` s for the first one."""
    inbox = _state(request).inbox
    since = _int_query(request, "since", 0)
    target = request.query.get("target") or None
    wait = _wait_query(request)
    if wait > 0:
        pushes = await inbox.wait(since, wait, target=target)
    else:
        pushes = inbox.since(since, target=target)
    return json_response({"pushes": [p.to_json() for p in pushes], "last_seq": inbox.last_seq})


async def get_push(request: web.Request) -> web.Response:
    """One push by ``seq``."""
    raw = request.match_info["seq"]
    seq = int(raw) if raw.isdigit() else 0
    found = [p for p in _state(request).inbox.since(seq - 1) if p.seq == seq]
    if not found:
        raise TimkitError(404, Codes.NOT_FOUND, f"no push {raw!r} (never, or dropped)")
    return json_response(found[0].to_json())


async def list_faults(request: web.Request) -> web.Response:
    """The armed faults."""
    return json_response({"faults": _state(request).faults.to_json()})


async def arm_fault(request: web.Request) -> web.Response:
    """Arm a fault: the next ``count`` deliveries to ``target`` answer ``status``."""
    faults = _state(request).faults
    faults.arm(_parse(FaultRequest, await request.read()))
    return json_response({"faults": faults.to_json()}, 201)


async def clear_faults(request: web.Request) -> web.Response:
    """Disarm every fault."""
    return json_response({"cleared": _state(request).faults.clear()})


async def attempts(request: web.Request) -> web.Response:
    """Delivery attempts of ``?target=`` (``{"target", "count", "statuses"}``), or all."""
    tally = _state(request).attempts
    target = request.query.get("target")
    return json_response(tally.of(target) if target else {"targets": tally.to_json()})


async def index(request: web.Request) -> web.Response:
    """The page: recent pushes, newest first; the browser reloads it every few seconds."""
    state = _state(request)
    page = pages.list_page(state.inbox.since(0), state.devices.counts(), state.devices.public_url)
    return html_response(page, headers={"Refresh": str(pages.REFRESH_SECONDS)})


def create_app(state: ReceiverState) -> web.Application:
    """The aiohttp application of the receiver (FCM routes are added by the composition
    root)."""
    app = web.Application(middlewares=[_count_attempts, _edge])
    app[STATE_KEY] = state
    app.router.add_get("/health", health)
    app.router.add_get("/", index)
    app.router.add_post("/api/webpush/subscriptions", subscribe_webpush)
    app.router.add_delete("/api/webpush/subscriptions/{id}", unsubscribe_webpush)
    app.router.add_post("/api/unifiedpush/endpoints", create_unifiedpush_endpoint)
    app.router.add_delete("/api/unifiedpush/endpoints/{id}", delete_unifiedpush_endpoint)
    app.router.add_post("/wp/{id}", webpush_push, name="webpush.push")
    app.router.add_post("/up/{id}", unifiedpush_push, name="unifiedpush.push")
    app.router.add_get("/api/pushes", list_pushes)
    app.router.add_get("/api/pushes/{seq}", get_push)
    app.router.add_get("/api/faults", list_faults)
    app.router.add_post("/api/faults", arm_fault)
    app.router.add_delete("/api/faults", clear_faults)
    app.router.add_get("/api/attempts", attempts)
    return app
