"""Firebase Cloud Messaging HTTP v1: a service account's OAuth token, one message per device.

The backend signs an RS256 JWT with the service account's key and trades it at the account's
``token_uri`` for an access token (RFC 7523 JWT bearer grant), which it keeps until shortly
before it expires. Each device gets ``POST {endpoint}/v1/projects/<project>/messages:send``
with a data-only message carrying ids, never content (gematik's "event id only" design)::

    {"message": {"token": <pushkey>,
                 "data": {"event_id", "room_id", "prio", "unread", "missed_calls"},
                 "android": {"priority": "HIGH" | "NORMAL"}}}

Outcomes (FCM v1 ``ErrorCode``, in ``error.details[].errorCode``):

=====================================================  ===================================
``UNREGISTERED`` (404), ``SENDER_ID_MISMATCH`` (403)   :class:`PushkeyRejected`
400 ``INVALID_ARGUMENT`` naming ``message.token``      :class:`PushkeyRejected`
401 (access token refused)                             new token, sent once more; then
                                                       :class:`TemporaryPushError`
401 ``THIRD_PARTY_AUTH_ERROR`` (APNs/WebPush creds)    :class:`PermanentPushError`
429 ``QUOTA_EXCEEDED``, 500 ``INTERNAL``, 503 …, 5xx   :class:`TemporaryPushError`
                                                       (``Retry-After`` honoured)
time-out, connection failure                           :class:`TemporaryPushError`
any other 4xx (incl. a 404 without ``UNREGISTERED``)   :class:`PermanentPushError`
=====================================================  ===================================
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import orjson
from jwcrypto import jwk, jws

from timkit.core.errors import ConfigError
from timkit.push.backends.base import (
    Backend,
    PermanentPushError,
    PushError,
    PushkeyRejected,
    TemporaryPushError,
    parse_retry_after,
    service_client,
)
from timkit.push.config import FcmApp, OutboundConfig
from timkit.push.notify_request import Device, Notification

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
"""The OAuth scope that allows sending FCM messages."""

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
"""RFC 7523 ``grant_type`` of the token request."""

ASSERTION_LIFETIME = 3600
"""Seconds a signed assertion is valid (Google accepts at most one hour)."""

REFRESH_MARGIN = 300.0
"""Seconds before its expiry an access token is replaced (at most a quarter of its life)."""

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"

REJECTING_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
"""FCM error codes that mean the registration token is of no use any more."""

TEMPORARY_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})


@dataclass(frozen=True)
class ServiceAccount:
    """The parts of a Google service-account JSON file the JWT bearer grant needs.

    Attributes:
        client_email: the account (``iss`` of the assertion).
        private_key: its RSA signing key.
        private_key_id: ``kid`` of the assertion, if the file names one.
        token_uri: where access tokens come from (``aud`` of the assertion).
    """

    client_email: str
    private_key: jwk.JWK
    private_key_id: str | None
    token_uri: str

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a service-account JSON file.

        Raises:
            ConfigError: the file is missing, not JSON, or lacks a field or an RSA key.
        """
        try:
            document = orjson.loads(path.read_bytes())
        except OSError as e:
            raise ConfigError(f"cannot read service account: {e}", source=str(path)) from e
        except orjson.JSONDecodeError as e:
            raise ConfigError("service account is not JSON", source=str(path)) from e
        if not isinstance(document, dict):
            raise ConfigError("service account is not a JSON object", source=str(path))
        for name in ("client_email", "private_key", "token_uri"):
            if not isinstance(document.get(name), str) or not document[name]:
                raise ConfigError("missing or not a string", path=name, source=str(path))
        key = jwk.JWK()
        try:
            key.import_from_pem(document["private_key"].encode())
        except (ValueError, TypeError) as e:
            raise ConfigError("not a PEM private key", path="private_key", source=str(path)) from e
        if key.get("kty") != "RSA" or not key.has_private:
            raise ConfigError("not an RSA private key", path="private_key", source=str(path))
        kid = document.get("private_key_id")
        return cls(
            client_email=document["client_email"],
            private_key=key,
            private_key_id=kid if isinstance(kid, str) and kid else None,
            token_uri=document["token_uri"],
        )

    def assertion(self, now: float) -> str:
        """A signed JWT bearer assertion (RS256) asking for :data:`SCOPE`, valid one hour."""
        claims = {
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": int(now),
            "exp": int(now) + ASSERTION_LIFETIME,
        }
        header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
        if self.private_key_id:
            header["kid"] = self.private_key_id
        token = jws.JWS(orjson.dumps(claims))
        token.add_signature(self.private_key, alg="RS256", protected=orjson.dumps(header).decode())
        return str(token.serialize(compact=True))


class AccessTokens:
    """The service account's current access token, fetched again shortly before it expires.

    Concurrent callers share one token request.

    Args:
        account: whose token.
        client: the HTTP client for the token endpoint.
        clock: Unix time (tests move it).
    """

    def __init__(
        self,
        account: ServiceAccount,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._account = account
        self._client = client
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """A valid access token (cached, or fetched now).

        Raises:
            TemporaryPushError: the token endpoint is unreachable or failed (5xx, 429).
            PermanentPushError: the token endpoint refused the grant (4xx).
        """
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._token, lifetime = await self._fetch()
                self._refresh_at = self._clock() + lifetime - min(REFRESH_MARGIN, lifetime / 4)
                log.info("obtained an FCM access token for %s", self._account.client_email)
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (refused by FCM) unless it was already replaced."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": JWT_BEARER, "assertion": self._account.assertion(self._clock())}
        try:
            response = await self._client.post(self._account.token_uri, data=form)
        except httpx.TimeoutException as e:
            raise TemporaryPushError("FCM token endpoint timed out") from e
        except httpx.TransportError as e:
            raise TemporaryPushError(f"FCM token endpoint unreachable: {type(e).__name__}") from e
        if response.status_code == 429 or response.status_code >= 500:
            raise TemporaryPushError(
                f"FCM token endpoint answered {response.status_code}",
                retry_after=retry_after(response),
            )
        document = _json_object(response)
        if response.status_code != 200:
            error = document.get("error")
            raise PermanentPushError(
                f"FCM token endpoint refused the service account: {response.status_code}"
                + (f" {error}" if isinstance(error, str) else "")
            )
        token, lifetime = document.get("access_token"), document.get("expires_in")
        if not isinstance(token, str) or not token:
            raise TemporaryPushError("FCM token endpoint answered no access_token")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = ASSERTION_LIFETIME
        return token, float(lifetime)


class FcmBackend(Backend):
    """Delivers to FCM HTTP v1 with one shared HTTP client and cached access token.

    Args:
        app_id: the app served.
        config: the app's ``[apps.<app_id>]`` table.
        account: the loaded service account.
        client: the HTTP client for FCM and the token endpoint (closed by :meth:`close`).
    """

    kind = "fcm"

    def __init__(
        self,
        app_id: str,
        config: FcmApp,
        account: ServiceAccount,
        client: httpx.AsyncClient,
    ) -> None:
        super().__init__(app_id)
        self.config = config
        self._client = client
        self._tokens = AccessTokens(account, client)
        self._url = f"{config.endpoint.rstrip('/')}/v1/projects/{config.project_id}/messages:send"

    @classmethod
    async def create(cls, app_id: str, config: FcmApp, outbound: OutboundConfig) -> Self:
        """Load the service account and open the HTTP client (HTTP/2 where offered).

        Raises:
            ConfigError: the service account or the CA file cannot be read.
        """
        account = ServiceAccount.load(config.service_account_file)
        client = service_client(config.ca_file, config.delivery)
        return cls(app_id, config, account, client)

    async def send(self, notification: Notification, device: Device) -> None:
        """Send one data message to ``device.pushkey`` (see the module docstring for outcomes)."""
        body = orjson.dumps(fcm_message(notification, device))
        token = await self._tokens.get()
        response = await self._post(body, token)
        if response.status_code == 401 and _error_code(response) != "THIRD_PARTY_AUTH_ERROR":
            self._tokens.invalidate(token)
            response = await self._post(body, await self._tokens.get())
            if response.status_code == 401:
                raise TemporaryPushError("FCM refused a freshly obtained access token (401)")
        raise_for_fcm(response)

    async def _post(self, body: bytes, token: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        try:
            return await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as e:
            raise TemporaryPushError("FCM timed out") from e
        except httpx.TransportError as e:
            raise TemporaryPushError(f"FCM unreachable: {type(e).__name__}") from e

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def fcm_message(notification: Notification, device: Device) -> dict[str, Any]:
    """The ``messages:send`` body for one device: ids and counts only, all values strings."""
    data: dict[str, str] = {}
    if notification.event_id:
        data["event_id"] = notification.event_id
    if notification.room_id:
        data["room_id"] = notification.room_id
    data["prio"] = notification.prio
    if notification.counts.unread is not None:
        data["unread"] = str(notification.counts.unread)
    if notification.counts.missed_calls is not None:
        data["missed_calls"] = str(notification.counts.missed_calls)
    priority = "HIGH" if notification.prio == "high" else "NORMAL"
    return {"message": {"token": device.pushkey, "data": data, "android": {"priority": priority}}}


def raise_for_fcm(response: httpx.Response) -> None:
    """Map a ``messages:send`` response to the backend outcomes; return on 2xx.

    Raises:
        PushkeyRejected, TemporaryPushError, PermanentPushError: see the module docstring.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    error = _error_of(response)
    code = _fcm_error_code(error) or str(error.get("status") or "")
    described = f"FCM answered {status}" + (f" {code}" if code else "")
    outcome: PushError
    if code in REJECTING_CODES or (status == 400 and _about_token(error)):
        outcome = PushkeyRejected(described)
    elif status == 429 or status >= 500 or code in TEMPORARY_CODES:
        outcome = TemporaryPushError(described, retry_after=retry_after(response))
    else:
        outcome = PermanentPushError(described)
    raise outcome


def _error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of a Google API error body (empty when there is none)."""
    error = _json_object(response).get("error")
    return error if isinstance(error, dict) else {}


def _error_code(response: httpx.Response) -> str | None:
    """The FCM ``errorCode`` of an error response, if it names one."""
    return _fcm_error_code(_error_of(response))


def _fcm_error_code(error: dict[str, Any]) -> str | None:
    for detail in _details(error):
        if detail.get("@type") == FCM_ERROR_TYPE and isinstance(detail.get("errorCode"), str):
            return str(detail["errorCode"])
    return None


def _about_token(error: dict[str, Any]) -> bool:
    """Whether an ``INVALID_ARGUMENT`` error is about the registration token."""
    if error.get("status") != "INVALID_ARGUMENT" and _fcm_error_code(error) != "INVALID_ARGUMENT":
        return False
    for detail in _details(error):
        if detail.get("@type") == BAD_REQUEST_TYPE:
            violations = detail.get("fieldViolations")
            for violation in violations if isinstance(violations, list) else []:
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    return True
    message = error.get("message")
    return isinstance(message, str) and "registration token" in message.lower()


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta or HTTP date), None when absent or bad."""
    return parse_retry_after(response.headers.get("retry-after"))
