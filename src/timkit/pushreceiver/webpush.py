"""The WebPush side of a device: subscription keys, VAPID checks, ``aes128gcm`` decryption.

A :class:`Subscription` is what a browser's ``PushManager.subscribe()`` creates: an EC P-256
key pair and a 16-byte auth secret, handed to the application server as
``{"endpoint", "keys": {"p256dh", "auth"}}`` (RFC 8291 §3). A push to the endpoint must carry
``Authorization: vapid t=<JWT>, k=<public key>`` (RFC 8292): :class:`VapidVerifier` checks the
ES256 signature with ``k``, ``aud`` (the endpoint's origin), ``exp`` (in the future, at most
24 h ahead) and ``sub``; :func:`decrypt` opens the ``aes128gcm`` body (RFC 8188, RFC 8291).
Failures raise :class:`~timkit.core.errors.TimkitError` (401, 403 or 400) naming the reason.
"""

from __future__ import annotations

import binascii
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import http_ece  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core.errors import Codes, TimkitError
from timkit.core.jwt import TokenError, b64url, b64url_decode, key_from_pem, verify

MAX_VAPID_LIFETIME = 24 * 60 * 60
"""RFC 8292 §2: ``exp`` must not be more than 24 hours after the request."""

_AUTH_PARAM = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,\s]*)\s*")


@dataclass(frozen=True)
class Subscription:
    """One push subscription of a (stand-in) browser.

    Attributes:
        id: the random token in the endpoint URL.
        private_key: the user agent's ECDH key (``p256dh`` is its public half).
        auth: the 16-byte auth secret.
        application_server_key: the pinned VAPID public key (raw, uncompressed point), or
            None when any key may push.
        label: whose device this is (e.g. the MXID), shown with each push; None = unnamed.
    """

    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: bytes | None = None
    label: str | None = None

    @classmethod
    def create(
        cls, application_server_key: str | None = None, label: str | None = None
    ) -> Subscription:
        """A new subscription with fresh keys.

        Args:
            application_server_key: base64url VAPID public key to pin; None = any.
            label: whose device this is (shown with each push); None = unnamed.

        Raises:
            TimkitError: 400 when ``application_server_key`` is not a P-256 public key.
        """
        pinned = None
        if application_server_key is not None:
            pinned = _raw_public_key(application_server_key, "application_server_key").public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        return cls(
            id=secrets.token_urlsafe(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=secrets.token_bytes(16),
            application_server_key=pinned,
            label=label,
        )

    def keys(self) -> dict[str, str]:
        """The ``keys`` member of the browser's ``PushSubscription`` JSON."""
        p256dh = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(p256dh), "auth": b64url(self.auth)}


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-case, without a default port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or (scheme, port) in {("http", 80), ("https", 443)}:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _is_origin(url: str) -> bool:
    """Whether ``url`` is an origin (``scheme://host[:port]``, at most a ``/`` path)."""
    parts = urlsplit(url)
    return bool(parts.hostname) and parts.path in {"", "/"} and not (parts.query or parts.fragment)


def _raw_public_key(text: str, what: str) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(text))
    except (ValueError, binascii.Error) as e:
        raise TimkitError(
            400, Codes.INVALID_PARAM, f"{what} is not a base64url P-256 public key"
        ) from e


def parse_authorization(header: str) -> tuple[str, str]:
    """``(t, k)`` of an ``Authorization: vapid t=…, k=…`` header (RFC 8292 §3).

    Raises:
        TimkitError: 401 when the header is missing, of another scheme, or lacks ``t``/``k``.
    """
    scheme, _, params = header.strip().partition(" ")
    if not header.strip():
        raise TimkitError(401, Codes.MISSING_TOKEN, "no Authorization header (VAPID required)")
    if scheme.lower() != "vapid":
        raise TimkitError(
            401, Codes.UNKNOWN_TOKEN, f"Authorization scheme {scheme!r} is not 'vapid'"
        )
    values = {}
    for part in params.split(","):
        if match := _AUTH_PARAM.fullmatch(part):
            values[match.group(1).lower()] = match.group(2)
    if not values.get("t") or not values.get("k"):
        raise TimkitError(401, Codes.UNKNOWN_TOKEN, "VAPID Authorization needs both t= and k=")
    return values["t"], values["k"]


def _verify_signature(token: str, k: str) -> tuple[bytes, dict[str, Any]]:
    """The raw public key ``k`` names and the claims of ``token`` it signed (ES256).

    Raises:
        TimkitError: 401 for a malformed key or a token that does not verify with it.
    """
    try:
        public = _raw_public_key(k, "VAPID key k")
    except TimkitError as e:
        raise TimkitError(401, Codes.UNKNOWN_TOKEN, e.message) from e
    raw = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        claims = verify(
            token,
            key_from_pem(pem),
            algs=["ES256"],
            issuer=None,
            audience=None,
            leeway=0,
            required=("exp", "aud", "sub"),
        )
    except TokenError as e:
        raise TimkitError(401, Codes.UNKNOWN_TOKEN, f"VAPID: {e.message}") from e
    return raw, claims


class VapidVerifier:
    """Checks pushes' VAPID ``Authorization`` headers, remembering verified signatures.

    An application server reuses its VAPID token for many pushes (RFC 8292 §2 lets it, and
    push services cache), so the ES256 verification runs once per distinct ``(t, k)``; the
    claims (``aud``, ``exp``, ``sub``) and the pinned key are checked on every push.

    Args:
        capacity: distinct tokens remembered; the cache is emptied when full.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._verified: dict[tuple[str, str], tuple[bytes, dict[str, Any]]] = {}

    def verify(
        self, header: str, audience: str, pinned: bytes | None, *, now: float | None = None
    ) -> dict[str, Any]:
        """Check a push's VAPID ``Authorization`` header; return the JWT's claims.

        Args:
            header: the ``Authorization`` header value ("" when absent).
            audience: the push resource's origin, as :func:`origin` gives it.
            pinned: the subscription's ``application_server_key``; None accepts any key.
            now: the current Unix time (tests).

        Raises:
            TimkitError: 401 for a missing, malformed, badly signed, expired, too long-lived
                or wrongly addressed token (or one without ``sub``); 403 when ``k`` is not
                the pinned key (RFC 8292 §4.2).
        """
        token, k = parse_authorization(header)
        verified = self._verified.get((token, k))
        if verified is None:
            verified = _verify_signature(token, k)
            if len(self._verified) >= self.capacity:
                self._verified.clear()
            self._verified[(token, k)] = verified
        raw, claims = verified
        if pinned is not None and raw != pinned:
            raise TimkitError(
                403, Codes.FORBIDDEN, "VAPID key k is not the subscription's application_server_key"
            )
        _check_claims(claims, audience, time.time() if now is None else now)
        return claims


def _check_claims(claims: dict[str, Any], audience: str, now: float) -> None:
    aud = claims["aud"]
    if not isinstance(aud, str) or not _is_origin(aud) or origin(aud) != audience:
        raise TimkitError(
            401, Codes.UNKNOWN_TOKEN, f"VAPID: aud {aud!r} is not this push service {audience!r}"
        )
    if not isinstance(claims["exp"], int | float) or claims["exp"] <= now:
        raise TimkitError(401, Codes.UNKNOWN_TOKEN, "VAPID: the token has expired (exp)")
    if claims["exp"] > now + MAX_VAPID_LIFETIME:
        raise TimkitError(401, Codes.UNKNOWN_TOKEN, "VAPID: exp is more than 24 hours ahead")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise TimkitError(401, Codes.UNKNOWN_TOKEN, "VAPID: sub is not a contact URI")


def decrypt(subscription: Subscription, body: bytes) -> bytes:
    """The plaintext of an ``aes128gcm`` push body for ``subscription`` (RFC 8291 §4).

    Raises:
        TimkitError: 400 when the body does not decrypt with the subscription's keys.
    """
    try:
        plain: bytes = http_ece.decrypt(
            body,
            private_key=subscription.private_key,
            auth_secret=subscription.auth,
            version="aes128gcm",
        )
    except Exception as e:  # http_ece raises ECEException, ValueError, InvalidTag, struct.error
        raise TimkitError(
            400,
            Codes.INVALID_PARAM,
            "body does not decrypt (aes128gcm) with the subscription's keys",
        ) from e
    return plain
