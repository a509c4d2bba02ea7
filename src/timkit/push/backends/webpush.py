"""WebPush delivery: RFC 8030 push, RFC 8291 ``aes128gcm`` encryption, RFC 8292 VAPID.

The device's ``pushkey`` is the subscription's ``p256dh`` key; ``data.endpoint`` and
``data.auth`` complete the subscription (Sygnal's convention). The payload is the
notification's present fields as flat JSON (:mod:`timkit.push.payload`), encrypted with
pywebpush for the subscription, at most 4096 bytes once encrypted. It is POSTed through the
SSRF guard with ``TTL``, ``Urgency`` (``high`` for ``prio: high``, else ``normal``) and a VAPID
``Authorization`` whose ``sub`` is ``vapid_contact``.

An endpoint that is no http(s) URL or that the SSRF guard refuses (a non-public address
not on ``outbound.allowed_origins``) rejects the pushkey without a request
(:class:`~timkit.push.ssrf.OutboundRefused`). Push service answers::

    2xx (201)              delivered
    404, 410               subscription gone          → PushkeyRejected
    408, 429, 5xx          try later (Retry-After)    → TemporaryPushError
    other (400, 401, 403, 413, 3xx …)                 → PermanentPushError
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException  # type: ignore[import-untyped]
from pywebpush import WebPusher, WebPushException  # type: ignore[import-untyped]

from timkit.core.errors import ConfigError
from timkit.push.backends.base import (
    Backend,
    PermanentPushError,
    PushkeyRejected,
    TemporaryPushError,
)
from timkit.push.config import OutboundConfig, WebPushApp
from timkit.push.notify_request import Device, Notification
from timkit.push.payload import encode_within, notification_fields
from timkit.push.ssrf import OutboundClient, PushResponse

MAX_RECORD = 4096
"""Largest encrypted body push services must accept (RFC 8030 §7.2)."""

MAX_PLAINTEXT = MAX_RECORD - 86 - 16 - 1
"""``aes128gcm`` adds an 86-byte header (salt, record size, 65-byte key), a 16-byte tag
and a padding delimiter to the payload (RFC 8188, RFC 8291)."""

VAPID_LIFETIME = 12 * 3600
"""Seconds a VAPID token is valid (RFC 8292 allows at most 24 h)."""

VAPID_RENEW = 3600
"""A cached token is renewed once it has less than this many seconds left."""


def load_vapid_key(path: Path, *, key_path: str) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 private key in the PEM file ``path``.

    Raises:
        ConfigError: naming ``key_path`` when the file is missing or not such a key.
    """
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", path=key_path) from None
    except ValueError:
        raise ConfigError(f"{path} is not a PEM private key", path=key_path) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{path} is not an EC P-256 key", path=key_path)
    return key


def raise_for_status(response: PushResponse) -> None:
    """Turn a push service's answer into the backend outcome (see the module docstring)."""
    status = response.status
    if 200 <= status < 300:
        return
    message = f"push service answered {status}"
    if status in (404, 410):
        raise PushkeyRejected(message)
    if status in (408, 429) or status >= 500:
        raise TemporaryPushError(message, retry_after=response.retry_after())
    raise PermanentPushError(message)


class WebPushBackend(Backend):
    """Delivers to WebPush subscriptions (see the module docstring)."""

    kind = "webpush"

    def __init__(
        self,
        app_id: str,
        config: WebPushApp,
        vapid_key: ec.EllipticCurvePrivateKey,
        client: OutboundClient,
    ) -> None:
        super().__init__(app_id)
        self.config = config
        self.client = client
        self._vapid = Vapid02(private_key=vapid_key)
        self._tokens: dict[str, tuple[str, float]] = {}

    @classmethod
    async def create(cls, app_id: str, config: Any, outbound: OutboundConfig) -> Self:
        """Load the VAPID key and open the guarded session."""
        assert isinstance(config, WebPushApp)
        key = load_vapid_key(config.vapid_private_key, key_path=f"apps.{app_id}.vapid_private_key")
        client = OutboundClient.from_config(outbound, limit=config.delivery.max_concurrency)
        return cls(app_id, config, key, client)

    async def send(self, notification: Notification, device: Device) -> None:
        """Encrypt the payload for the subscription and POST it to its endpoint."""
        endpoint = device.data.get("endpoint")
        auth = device.data.get("auth")
        if not isinstance(endpoint, str) or not isinstance(auth, str) or not endpoint or not auth:
            raise PushkeyRejected("subscription incomplete: data.endpoint and data.auth needed")
        target = self.client.guard.check_url(endpoint, self.config.allowed_endpoints)
        try:
            payload = encode_within(notification_fields(notification), MAX_PLAINTEXT)
        except ValueError as exc:
            raise PermanentPushError(str(exc)) from None
        subscription = {"endpoint": endpoint, "keys": {"p256dh": device.pushkey, "auth": auth}}
        try:
            encrypted: bytes = WebPusher(subscription).encode(payload, "aes128gcm")["body"]
        except (WebPushException, ValueError, TypeError):
            raise PushkeyRejected("subscription keys p256dh/auth are not valid") from None
        headers = {
            "Authorization": self._authorization(str(target.origin())),
            "TTL": str(self.config.ttl),
            "Urgency": "high" if notification.prio == "high" else "normal",
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        response = await self.client.post(
            endpoint, encrypted, headers, allowed_endpoints=self.config.allowed_endpoints
        )
        raise_for_status(response)

    def _authorization(self, audience: str) -> str:
        """``vapid t=<JWT>,k=<public key>`` for ``audience``, cached while valid."""
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is not None and cached[1] - now > VAPID_RENEW:
            return cached[0]
        expires = int(now) + VAPID_LIFETIME
        claims = {"sub": self.config.vapid_contact, "aud": audience, "exp": expires}
        try:
            header: str = self._vapid.sign(claims)["Authorization"]
        except VapidException as exc:
            raise PermanentPushError(f"cannot sign VAPID token: {exc}") from None
        if len(self._tokens) >= 1024:
            self._tokens.clear()
        self._tokens[audience] = (header, expires)
        return header

    async def close(self) -> None:
        """Close the session."""
        await self.client.close()
