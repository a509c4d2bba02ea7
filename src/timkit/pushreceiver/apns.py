"""The APNs stand-in: HTTP/2 over TLS, ``POST /3/device/<token>`` with provider tokens.

It runs on its own TLS port (hypercorn, ALPN ``h2`` only) because APNs speaks nothing but
HTTP/2; :func:`running_apns` serves it for the life of a context. Routes::

    POST /3/device/{device token}    a notification (HTTP/2 only) → 200 + apns-id
    POST /apns/unregister            {"token"}: later pushes to it answer 410 Unregistered

A notification is checked as Apple documents it, answering ``{"reason": …}``:

====================================================  ======================================
no ``authorization: bearer`` token                    403 ``MissingProviderToken``
unknown ``kid``, bad signature, wrong ``iss``          403 ``InvalidProviderToken``
``iat`` older than an hour                            403 ``ExpiredProviderToken``
no / unaccepted ``apns-topic``                        400 ``MissingTopic`` / ``TopicDisallowed``
device token not 64 hex characters                    400 ``BadDeviceToken``
bad ``apns-push-type``/``-priority``/``-expiration``  400 ``InvalidPushType``/``BadPriority``/
                                                      ``BadExpirationDate``
a header given twice                                  400 ``DuplicateHeaders``
empty or non-JSON-object body; over 4096 bytes        400 ``PayloadEmpty``/``BadPayload``;
                                                      413 ``PayloadTooLarge``
unregistered token                                    410 ``Unregistered`` + ``timestamp``
====================================================  ======================================

``BadPayload`` (malformed JSON, for which Apple documents no reason) and ``HTTP2Required`` (a
client that did not negotiate ``h2``, which real APNs refuses at the connection) are this
stand-in's own reasons. A delivered notification lands in the inbox (kind ``apns``, target =
device token, payload = the JSON body, meta = ``apns-priority``, ``apns-push-type``,
``apns-topic``, ``apns-id``). Faults armed for a device token (``POST /api/faults``) answer
their status with Apple's reason for it. Provider tokens are verified once and then cached;
Apple's ``TooManyProviderTokenUpdates`` (renewal within 20 minutes) is not enforced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import string
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from jwcrypto import jwk

from timkit.core import jwt
from timkit.core.errors import ConfigError
from timkit.pushreceiver.config import ApnsServerConfig
from timkit.pushreceiver.faults import Attempts, Faults
from timkit.pushreceiver.inbox import Inbox
from timkit.pushreceiver.stand_in import StandIn, unregister_token

log = logging.getLogger(__name__)

DEVICE_PATH = "/3/device/"
UNREGISTER_PATH = "/apns/unregister"
MAX_PAYLOAD = 4096
TOKEN_MAX_AGE = 3600
LEEWAY = 60
PUSH_TYPES = frozenset(
    {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm"}
    | {"liveactivity", "pushtotalk", "widgets"}
)
PRIORITIES = frozenset({"1", "5", "10"})
CHECKED_HEADERS = (
    "authorization",
    "apns-topic",
    "apns-push-type",
    "apns-priority",
    "apns-expiration",
    "apns-collapse-id",
    "apns-id",
)
FAULT_REASONS = {
    400: "BadMessageId",
    403: "Forbidden",
    404: "BadPath",
    405: "MethodNotAllowed",
    410: "Unregistered",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}
"""Apple's reason for an injected fault of each status."""

_HEX = frozenset(string.hexdigits)
_VERIFIED_CACHE = 1024


@dataclass
class ApnsResponse:
    """What the stand-in answers: status, ``apns-id`` and Apple's JSON error body."""

    status: int
    apns_id: str
    body: dict[str, Any] = field(default_factory=dict)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers (``apns-id``; ``content-type`` with an error body)."""
        headers = [(b"apns-id", self.apns_id.encode())]
        if self.body:
            headers.append((b"content-type", b"application/json"))
        return headers


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _load_key(path: Path) -> jwk.JWK:
    try:
        key = jwt.key_from_pem(path.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"unusable APNs key: {e}", source=str(path)) from e
    if key.get("kty") != "EC" or key.get("crv") != "P-256":
        raise ConfigError("APNs key is not an EC P-256 key", source=str(path))
    return jwk.JWK(**key.export_public(as_dict=True))


class ApnsServer(StandIn):
    """The APNs stand-in as an ASGI application.

    Args:
        config: the ``[apns]`` table.
        inbox: where delivered notifications land.
        faults: armed faults by device token (shared with the receiver's API).
        attempts: delivery attempts by device token (shared with the receiver's API).
        clock: Unix time (tests move it).

    Raises:
        ConfigError: a key file is unusable.
    """

    def __init__(
        self,
        config: ApnsServerConfig,
        inbox: Inbox,
        *,
        faults: Faults | None = None,
        attempts: Attempts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(inbox, faults=faults, attempts=attempts, clock=clock)
        self.config = config
        self._keys = {kid: _load_key(path) for kid, path in config.keys.items()}
        self._verified: dict[str, float] = {}  # provider token → its iat
        self.unregistered: dict[str, int] = {}  # device token → since (ms)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """The ASGI entry point (HTTP and lifespan)."""
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        body, complete = await _read_body(receive, MAX_PAYLOAD)
        response = await self.handle(
            scope["method"], scope["path"], scope["http_version"], headers, body, complete
        )
        content = orjson.dumps(response.body) if response.body else b""
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response.headers(),
            }
        )
        await send({"type": "http.response.body", "body": content, "more_body": False})

    async def handle(
        self,
        method: str,
        path: str,
        http_version: str,
        headers: dict[str, list[str]],
        body: bytes,
        complete: bool = True,
    ) -> ApnsResponse:
        """Answer one request (the protocol logic, independent of ASGI).

        Args:
            method: the HTTP method.
            path: the request path.
            http_version: ``"2"`` for HTTP/2.
            headers: lower-case names to their values.
            body: the body read (at most :data:`MAX_PAYLOAD` + 1 bytes).
            complete: False when the body was longer than what was read.
        """
        apns_id = _first(headers, "apns-id") or str(uuid.uuid4()).upper()
        if path == UNREGISTER_PATH and method == "POST":
            return self._unregister(body, apns_id)
        try:
            if not path.startswith(DEVICE_PATH):
                raise _Refused(404, "BadPath")
            if method != "POST":
                raise _Refused(405, "MethodNotAllowed")
            if http_version != "2":
                raise _Refused(400, "HTTP2Required")
            device_token = path[len(DEVICE_PATH) :]
            meta = self._check_headers(headers, device_token)
            payload = _payload(body, complete)
        except _Refused as refused:
            return ApnsResponse(refused.status, apns_id, {"reason": refused.reason})
        return await self._deliver(device_token, payload, {**meta, "apns-id": apns_id}, apns_id)

    def _check_headers(self, headers: dict[str, list[str]], device_token: str) -> dict[str, Any]:
        if any(len(headers.get(name, ())) > 1 for name in CHECKED_HEADERS):
            raise _Refused(400, "DuplicateHeaders")
        self._check_provider_token(_first(headers, "authorization"))
        topic = _first(headers, "apns-topic")
        if not topic:
            raise _Refused(400, "MissingTopic")
        if topic not in self.config.topics:
            raise _Refused(400, "TopicDisallowed")
        if not device_token:
            raise _Refused(400, "MissingDeviceToken")
        if len(device_token) != 64 or not set(device_token) <= _HEX:
            raise _Refused(400, "BadDeviceToken")
        push_type = _first(headers, "apns-push-type") or "alert"
        if push_type not in PUSH_TYPES:
            raise _Refused(400, "InvalidPushType")
        priority = _first(headers, "apns-priority") or "10"
        if priority not in PRIORITIES:
            raise _Refused(400, "BadPriority")
        expiration = _first(headers, "apns-expiration")
        if expiration is not None and not expiration.isdigit():
            raise _Refused(400, "BadExpirationDate")
        collapse_id = _first(headers, "apns-collapse-id")
        if collapse_id is not None and len(collapse_id.encode()) > 64:
            raise _Refused(400, "BadCollapseId")
        apns_id = _first(headers, "apns-id")
        if apns_id is not None:
            try:
                uuid.UUID(apns_id)
            except ValueError:
                raise _Refused(400, "BadMessageId") from None
        return {"apns-priority": int(priority), "apns-push-type": push_type, "apns-topic": topic}

    def _check_provider_token(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Refused(403, "MissingProviderToken")
        iat = self._verified.get(token)
        if iat is None:
            iat = self._verify(token)
        now = self.clock()
        if now - iat > TOKEN_MAX_AGE:
            raise _Refused(403, "ExpiredProviderToken")
        if iat > now + LEEWAY:
            raise _Refused(403, "InvalidProviderToken")

    def _verify(self, token: str) -> float:
        """Check the token's signature, ``kid`` and ``iss``; remember it; return its ``iat``."""
        try:
            key = self._keys.get(str(jwt.header_of(token).get("kid")))
            if key is None:
                raise _Refused(403, "InvalidProviderToken")
            claims = orjson.loads(jwt.verify_signature(token, key, ["ES256"]))
        except (jwt.TokenError, orjson.JSONDecodeError):
            raise _Refused(403, "InvalidProviderToken") from None
        iat = claims.get("iat") if isinstance(claims, dict) else None
        if claims.get("iss") != self.config.team_id or not isinstance(iat, int | float):
            raise _Refused(403, "InvalidProviderToken")
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = float(iat)
        return float(iat)

    async def _deliver(
        self, device_token: str, payload: dict[str, Any], meta: dict[str, Any], apns_id: str
    ) -> ApnsResponse:
        if fault := self.take_fault(device_token):
            reason = FAULT_REASONS.get(fault.status, "InternalServerError")
            return ApnsResponse(fault.status, apns_id, {"reason": reason})
        if (since := self.unregistered.get(device_token)) is not None:
            self.refuse(device_token, 410)
            return ApnsResponse(410, apns_id, {"reason": "Unregistered", "timestamp": since})
        item = await self.deliver("apns", device_token, payload, meta)
        log.info(
            "apns push %d (%s, priority %s)",
            item.seq,
            meta["apns-push-type"],
            meta["apns-priority"],
        )
        return ApnsResponse(200, apns_id)

    def _unregister(self, body: bytes, apns_id: str) -> ApnsResponse:
        token = unregister_token(body)
        if token is None:
            return ApnsResponse(400, apns_id, {"reason": "BadPayload"})
        self.unregistered[token.lower()] = int(self.clock() * 1000)
        return ApnsResponse(200, apns_id, {"token": token, "unregistered": True})


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _payload(body: bytes, complete: bool) -> dict[str, Any]:
    if not complete or len(body) > MAX_PAYLOAD:
        raise _Refused(413, "PayloadTooLarge")
    if not body.strip():
        raise _Refused(400, "PayloadEmpty")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        raise _Refused(400, "BadPayload")
    return document


async def _read_body(receive: ASGIReceiveCallable, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` + 1 bytes of the request body; False when more was sent."""
    body = bytearray()
    while True:
        event = await receive()
        if event["type"] != "http.request":
            return bytes(body), True
        body += event["body"]
        if len(body) > limit:
            return bytes(body), False
        if not event["more_body"]:
            return bytes(body), True


@contextlib.asynccontextmanager
async def running_apns(
    config: ApnsServerConfig,
    inbox: Inbox,
    ssl_cert: Path,
    ssl_key: Path,
    bind: str = "127.0.0.1",
    *,
    faults: Faults | None = None,
    attempts: Attempts | None = None,
) -> AsyncIterator[int]:
    """Serve the APNs stand-in on ``bind:config.port`` (TLS, HTTP/2) inside the context.

    Args:
        config: the ``[apns]`` table; ``port`` 0 picks a free port.
        inbox: where delivered notifications land.
        ssl_cert: PEM server certificate (the receiver's).
        ssl_key: its PEM private key.
        bind: listen address.
        faults: the receiver's fault injections; None = none.
        attempts: the receiver's attempt tally; None = not kept.

    Yields:
        The bound port.

    Raises:
        ConfigError: a key file is unusable.
        OSError: the port cannot be bound, or the certificate cannot be read.
    """
    app = ApnsServer(config, inbox, faults=faults, attempts=attempts)
    server = HypercornConfig()
    server.certfile, server.keyfile = str(ssl_cert), str(ssl_key)
    server.alpn_protocols = ["h2"]
    server.accesslog = None
    server.errorlog = log
    server.graceful_timeout = 2.0
    server.keep_alive_timeout = 60.0
    server.create_ssl_context()  # a bad certificate fails here, not in the serving task
    # Bind (and listen) here so the port is known and connections queue until hypercorn
    # accepts; hypercorn takes the socket over by its file descriptor.
    sock = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind, config.port))
        sock.listen(128)
        port = int(sock.getsockname()[1])
    except BaseException:
        sock.close()
        raise
    server.bind = [f"fd://{sock.detach()}"]
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, server, shutdown_trigger=stop.wait))
    log.info("APNs stand-in on https://%s:%d (HTTP/2)", bind, port)
    try:
        yield port
    finally:
        stop.set()
        await task
