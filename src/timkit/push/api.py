"""HTTP edge of the Push-Gateway (Matrix Push Gateway API v1).

Routes::

    POST /_matrix/push/v1/notify   {"notification": {...}} → 200 {"rejected": [pushkeys]}
    GET  /health                   liveness
    GET  /metrics                  Prometheus metrics, to loopback peers only

Answers of ``/notify``:

* 200 ``{"rejected": [...]}`` — every device was dealt with: delivered, de-duplicated,
  gone (rejected), or refused for good (permanent errors are logged, not rejected);
* 400 ``M_NOT_JSON`` (body not JSON) / ``M_BAD_JSON`` (not a valid notification; the error
  names the field, e.g. ``notification.devices: Field required``);
* 413 ``M_TOO_LARGE`` — body over ``max_body``;
* 502 ``TIMKIT_UPSTREAM`` — some device's push service still failed temporarily after
  every attempt. Synapse then backs off and sends the notification again; devices it
  already reached are not pushed twice (de-duplication), and the body still lists
  ``rejected`` pushkeys;
* 404/405 ``M_UNRECOGNIZED`` — other paths and methods.

Errors are rendered here only, as Matrix JSON.
"""

from __future__ import annotations

import ipaddress
import logging

from aiohttp import web
from pydantic import ValidationError

from timkit.core import jsonbody
from timkit.core.errors import Codes, TimkitError
from timkit.core.metrics import metrics_handler
from timkit.core.web import edge_middleware, health, json_response
from timkit.push.dispatch import Dispatcher
from timkit.push.metrics import PushMetrics
from timkit.push.notify_request import NotifyRequest

log = logging.getLogger(__name__)

NOTIFY_PATH = "/_matrix/push/v1/notify"


DISPATCHER_KEY = web.AppKey("push.dispatcher", Dispatcher)
MAX_BODY_KEY = web.AppKey("push.max_body", int)


def render_error(_request: web.Request, error: TimkitError) -> web.Response:
    """``error`` as a Matrix error body."""
    return json_response(error.to_matrix(), error.status)


_edge = edge_middleware(render_error, logger=log)


def parse_notify(body: bytes) -> NotifyRequest:
    """The request body as a :class:`NotifyRequest`.

    Raises:
        TimkitError: 400 ``M_NOT_JSON`` or ``M_BAD_JSON`` naming the first offending field.
    """
    try:
        jsonbody.parse_json_object(body)  # names why a body is unusable (not UTF-8, depth, …)
    except jsonbody.JsonBodyError as e:
        raise e.to_error(jsonbody.MATRIX_CODES) from None
    try:
        return NotifyRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":  # valid JSON: only pydantic's nesting limit is left
            raise TimkitError(400, Codes.NOT_JSON, f"the request body: {first['msg']}") from None
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise TimkitError(400, Codes.BAD_JSON, f"{where}: {first['msg']}") from None


async def notify(request: web.Request) -> web.Response:
    """``POST /_matrix/push/v1/notify``: dispatch to every device, answer the rejected."""
    try:
        body = await jsonbody.read_body(request, request.app[MAX_BODY_KEY])
    except jsonbody.JsonBodyError as e:
        raise e.to_error(jsonbody.MATRIX_CODES) from None
    notification = parse_notify(body).notification
    result = await request.app[DISPATCHER_KEY].dispatch(notification)
    rejected = result.rejected
    unreachable = result.unreachable
    if unreachable:
        raise TimkitError(
            502,
            Codes.UPSTREAM,
            f"{len(unreachable)} of {len(result.deliveries)} devices could not be reached; "
            "retry later",
            extra={"rejected": rejected},
        )
    return json_response({"rejected": rejected})


def _is_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def create_app(dispatcher: Dispatcher, metrics: PushMetrics, *, max_body: int) -> web.Application:
    """The aiohttp application of the gateway.

    Args:
        dispatcher: delivers each notification.
        metrics: served at ``/metrics``.
        max_body: largest ``/notify`` body in bytes.
    """
    app = web.Application(middlewares=[_edge], client_max_size=max_body)
    app[DISPATCHER_KEY] = dispatcher
    app[MAX_BODY_KEY] = max_body
    exposition = metrics_handler(metrics.registry)

    async def local_metrics(request: web.Request) -> web.StreamResponse:
        if not _is_loopback(request):
            raise TimkitError(404, Codes.UNRECOGNIZED, "not found")
        return await exposition(request)

    app.router.add_post(NOTIFY_PATH, notify)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", local_metrics)
    return app
