"""Test doubles for the Push-Gateway: a push service that speaks HTTP, and a scripted backend.

* :class:`FakePushService` — an aiohttp server on a runtime-chosen loopback port. Preload
  answers with :meth:`~FakePushService.preload`; every request is recorded. For WebPush it
  decrypts ``aes128gcm`` bodies with a :class:`Subscription`'s private key (``http_ece``)
  and verifies the VAPID JWT's ES256 signature.
* :class:`ScriptedBackend` — a :class:`Backend` that reacts to a per-pushkey script of
  outcomes (Sygnal's ``TestPushkin``), records its sends and can be held on an event.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import http_ece  # type: ignore[import-untyped]
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from timkit.core.web import running_app
from timkit.push.backends.base import Backend, PushError
from timkit.push.config import OutboundConfig
from timkit.push.notify_request import Device, Notification


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_vapid_key(path: Any) -> ec.EllipticCurvePrivateKey:
    """A fresh VAPID key, written to ``path`` as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


@dataclass
class Subscription:
    """A browser's push subscription: its keys and the endpoint it was given."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    def device(self, app_id: str = "web") -> dict[str, Any]:
        """The device entry of a notify request for this subscription."""
        return {
            "app_id": app_id,
            "pushkey": self.p256dh,
            "data": {"endpoint": self.endpoint, "auth": b64url(self.auth_secret)},
        }

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth_secret, version="aes128gcm"
        )
        result: dict[str, Any] = json.loads(plain)
        return result


def verify_vapid(authorization: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The claims of ``vapid t=<jwt>,k=<key>`` after checking ``k`` and the signature.

    Raises:
        AssertionError: wrong scheme, key or signature.
    """
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid"
    parts = dict(part.split("=", 1) for part in params.split(","))
    expected_k = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert b64url_decode(parts["k"]) == expected_k
    header, payload, signature = parts["t"].split(".")
    assert json.loads(b64url_decode(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key.verify(der, f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("VAPID signature does not verify") from None
    claims: dict[str, Any] = json.loads(b64url_decode(payload))
    return claims


@dataclass(frozen=True)
class Recorded:
    """One request the fake push service received."""

    path: str
    headers: dict[str, str]
    body: bytes


class FakePushService:
    """A push service on loopback: answers what was preloaded (else 201), records requests."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._answers: dict[str, deque[tuple[int, dict[str, str]]]] = defaultdict(deque)
        self._arrived = asyncio.Condition()
        self.hold: asyncio.Event | None = None
        self.port = 0

    def url(self, path: str = "/push/1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def preload(self, path: str, *answers: int | tuple[int, dict[str, str]]) -> None:
        """Answer the next requests to ``path`` with these statuses (and headers), in order."""
        for answer in answers:
            self._answers[path].append(answer if isinstance(answer, tuple) else (answer, {}))

    def to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        """Wait until ``count`` requests arrived in all."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._arrived:
            self.requests.append(Recorded(request.path, dict(request.headers), body))
            self._arrived.notify_all()
        if self.hold is not None:
            await self.hold.wait()
        queue = self._answers.get(request.path)
        status, headers = queue.popleft() if queue else (201, {})
        return web.Response(status=status, headers=headers)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        async with running_app(app, "127.0.0.1", 0) as runner:
            self.port = int(runner.addresses[0][1])
            yield self


class ScriptedBackend(Backend):
    """A backend whose outcomes are scripted per pushkey (default: success).

    ``script[pushkey]`` is a list of exceptions (raised) or None (success), consumed one per
    attempt; once empty, sends succeed. ``gate``, when set, holds every send until it is set.
    """

    kind = "scripted"

    def __init__(self, app_id: str) -> None:
        super().__init__(app_id)
        self.script: dict[str, list[PushError | None]] = {}
        self.sends: list[tuple[str | None, str, float]] = []
        self.gate: asyncio.Event | None = None
        self.active = 0
        self.peak = 0
        self.closed = False
        self._sent = asyncio.Condition()

    async def wait_sends(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` sends have started."""
        async with asyncio.timeout(timeout), self._sent:
            await self._sent.wait_for(lambda: len(self.sends) >= count)

    @classmethod
    async def create(cls, app_id: str, config: Any, outbound: OutboundConfig) -> Self:
        return cls(app_id)

    async def send(self, notification: Notification, device: Device) -> None:
        async with self._sent:
            self.sends.append((notification.event_id, device.pushkey, time.monotonic()))
            self._sent.notify_all()
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            steps = self.script.get(device.pushkey)
            if steps:
                step = steps.pop(0)
                if step is not None:
                    raise step
        finally:
            self.active -= 1

    async def close(self) -> None:
        self.closed = True
