"""The FCM HTTP v1 stand-in: Google's OAuth token endpoint and ``messages:send``.

Routes (added to the receiver's aiohttp app by its composition root)::

    POST /token                                   JWT bearer grant (RFC 7523) → access token
    POST /v1/projects/{project}/messages:send     {"message": {"token", "data", …}} → {"name"}
    POST /fcm/unregister                          {"token"}: later sends answer 404 UNREGISTERED

``/token`` verifies the assertion like Google does: RS256 signature by the key of a
configured service account (``iss`` = its ``client_email``, ``kid`` = its
``private_key_id``), ``scope`` containing ``firebase.messaging``, at most an hour between
``iat`` and ``exp``, not expired. ``aud`` must be a URL whose *path* is the one the request
came in at (``/token``); its scheme and host are not compared, so the service account's
``token_uri`` may name the receiver by any host name or port (loopback, public URL, proxy).
Refusals are OAuth JSON (``{"error": "invalid_grant", "error_description"}``, 400).

``messages:send`` wants a bearer token this stand-in issued that has not expired, the
configured project, ``message.token`` and string ``data`` values; its errors are Google's
JSON (``{"error": {"code", "message", "status", "details": [FcmError]}}``). A delivered
message lands in the inbox (kind ``fcm``, target = the registration token, payload =
``data``). Faults armed for a registration token (``POST /api/faults``) answer their status
in Google's shape.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from jwcrypto import jwk, jws

from timkit.core import jwt
from timkit.core.errors import Codes, ConfigError
from timkit.core.web import json_object, json_response, read_stream
from timkit.pushreceiver.config import FcmServerConfig
from timkit.pushreceiver.faults import Attempts, Faults
from timkit.pushreceiver.inbox import Inbox
from timkit.pushreceiver.stand_in import StandIn, unregister_token

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 3600
LEEWAY = 60
MAX_BODY = 64 * 1024
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_:.\-]{1,4096}")
"""What a registration token may look like (real ones are ~160 such characters)."""

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
"""google.rpc status names by HTTP status."""

FCM_CODE = {
    400: "INVALID_ARGUMENT",
    403: "SENDER_ID_MISMATCH",
    404: "UNREGISTERED",
    429: "QUOTA_EXCEEDED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
"""The FCM ``errorCode`` an injected fault of that status carries."""

_Handler = Callable[[web.Request], Awaitable[web.Response]]


class _Refused(Exception):
    """A request refused with ``response`` (raised inside the handlers only)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class _Account:
    client_email: str
    key_id: str | None
    public_key: jwk.JWK


def _load_account(path: Path) -> _Account:
    """The public half of a service-account JSON file's key; ConfigError when unusable."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise ConfigError(f"unreadable service account: {e}", source=str(path)) from e
    if not isinstance(document, dict):
        raise ConfigError("service account is not a JSON object", source=str(path))
    email, pem, kid = (document.get(k) for k in ("client_email", "private_key", "private_key_id"))
    if not isinstance(email, str) or not isinstance(pem, str):
        raise ConfigError("service account lacks client_email or private_key", source=str(path))
    key = jwk.JWK()
    try:
        key.import_from_pem(pem.encode())
    except (ValueError, TypeError) as e:
        raise ConfigError("private_key is not PEM", source=str(path)) from e
    if key.get("kty") != "RSA":
        raise ConfigError("private_key is not an RSA key", source=str(path))
    public = jwk.JWK(**key.export_public(as_dict=True))
    return _Account(email, kid if isinstance(kid, str) and kid else None, public)


def oauth_error(description: str, error: str = "invalid_grant", status: int = 400) -> _Refused:
    """An OAuth 2.0 token error response (RFC 6749 §5.2)."""
    return _Refused(json_response({"error": error, "error_description": description}, status))


def google_error(
    status: int,
    message: str,
    fcm_code: str | None = None,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> _Refused:
    """A Google API error response, with an ``FcmError`` (and ``BadRequest``) detail."""
    details: list[dict[str, Any]] = []
    if fcm_code:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": fcm_code})
    if field:
        details.append(
            {
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": field, "description": message}],
            }
        )
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": GOOGLE_STATUS.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return _Refused(json_response({"error": error}, status, headers))


class FcmServer(StandIn):
    """The stand-in's state: service accounts, issued access tokens, unregistered tokens.

    Args:
        config: the ``[fcm]`` table.
        inbox: where delivered messages land.
        faults: armed faults by registration token (shared with the receiver's API).
        attempts: delivery attempts by registration token (shared with the receiver's API).
        clock: Unix time (tests move it).

    Raises:
        ConfigError: a service-account file is unusable.
    """

    def __init__(
        self,
        config: FcmServerConfig,
        inbox: Inbox,
        *,
        faults: Faults | None = None,
        attempts: Attempts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(inbox, faults=faults, attempts=attempts, clock=clock)
        self.config = config
        accounts = [_load_account(path) for path in config.service_account_files]
        self._accounts = {account.client_email: account for account in accounts}
        self._tokens: dict[str, float] = {}
        self.issued = 0
        """Access tokens issued so far."""
        self.unregistered: set[str] = set()

    def revoke_tokens(self) -> None:
        """Forget every access token issued (later sends with them answer 401)."""
        self._tokens.clear()

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes of the stand-in."""
        return [
            web.post("/token", self._handle(self.token)),
            web.post("/v1/projects/{project}/messages:send", self._handle(self.send)),
            web.post("/fcm/unregister", self._handle(self.unregister)),
        ]

    @staticmethod
    def _handle(handler: _Handler) -> _Handler:
        """``handler`` with its refusals turned into their responses."""

        async def handle(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except _Refused as refused:
                return refused.response

        return handle

    # -- POST /token -------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        """The JWT bearer grant: verify the assertion, issue an access token."""
        form = await request.post()
        grant_type, assertion = form.get("grant_type"), form.get("assertion")
        if grant_type != JWT_BEARER:
            raise oauth_error(f"grant_type must be {JWT_BEARER}", "unsupported_grant_type")
        if not isinstance(assertion, str) or not assertion:
            raise oauth_error("assertion is missing", "invalid_request")
        account = self._verify_assertion(assertion, request.path)
        now = self.clock()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        access_token = "ya29.local-" + secrets.token_urlsafe(32)
        self._tokens[access_token] = now + self.config.token_lifetime
        self.issued += 1
        log.info("fcm: access token issued to %s", account.client_email)
        return json_response(
            {
                "access_token": access_token,
                "expires_in": self.config.token_lifetime,
                "token_type": "Bearer",
            }
        )

    def _verify_assertion(self, assertion: str, path: str) -> _Account:
        try:
            header = jwt.header_of(assertion)
            unverified = orjson.loads(jwt.b64url_decode(assertion.split(".")[1]))
        except (jwt.TokenError, ValueError, orjson.JSONDecodeError) as e:
            raise oauth_error("assertion is not a JWT") from e
        if header.get("alg") != "RS256":
            raise oauth_error(f"assertion alg {header.get('alg')!r} is not RS256")
        issuer = unverified.get("iss") if isinstance(unverified, dict) else None
        account = self._accounts.get(issuer) if isinstance(issuer, str) else None
        if account is None:
            raise oauth_error(f"no service account {issuer!r}", "invalid_client")
        if account.key_id is not None and header.get("kid") != account.key_id:
            raise oauth_error("assertion kid is not the service account's key")
        verifier = jws.JWS()
        try:
            verifier.deserialize(assertion)
            verifier.allowed_algs = ["RS256"]
            verifier.verify(account.public_key, alg="RS256")
            claims = orjson.loads(verifier.payload)
        except Exception as e:  # jwcrypto raises several unrelated types
            raise oauth_error("Invalid JWT Signature.") from e
        if not isinstance(claims, dict):
            raise oauth_error("assertion claims are not a JSON object")
        try:
            jwt.check_claims(
                claims,
                issuer=account.client_email,
                audience=None,
                leeway=LEEWAY,
                now=self.clock(),
                required=("exp", "iat", "aud", "scope"),
            )
        except jwt.TokenError as e:
            raise oauth_error(e.message) from e
        if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME:
            raise oauth_error("assertion is valid for more than an hour")
        aud = claims["aud"]
        if not isinstance(aud, str) or urlsplit(aud).path != path:
            raise oauth_error(f"aud {aud!r} is not this token endpoint ({path})")
        scope = claims["scope"]
        if not isinstance(scope, str) or SCOPE not in scope.split():
            raise oauth_error(f"scope does not include {SCOPE}", "invalid_scope")
        return account

    # -- POST /v1/projects/{project}/messages:send ---------------------------------------

    async def send(self, request: web.Request) -> web.Response:
        """Accept one message for a registration token and record it."""
        self._authenticate(request)
        project = request.match_info["project"]
        if project != self.config.project_id:
            raise google_error(
                403, f"Permission 'cloudmessaging.messages.create' denied on project {project}"
            )
        message = await self._message(request)
        token = message["token"]
        if fault := self.take_fault(token):
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            raise google_error(
                fault.status,
                f"injected fault: {fault.status}",
                FCM_CODE.get(fault.status),
                headers=headers,
            )
        if token in self.unregistered:
            self.refuse(token, 404)
            raise google_error(404, "Requested entity was not found.", "UNREGISTERED")
        data = message.get("data", {})
        priority = (message.get("android") or {}).get("priority")
        name = f"projects/{project}/messages/0:{secrets.randbelow(10**16):016d}"
        item = await self.deliver("fcm", token, dict(data), {"priority": priority, "name": name})
        log.info("fcm push %d (%d data keys)", item.seq, len(data))
        return json_response({"name": name})

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expires = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None or expires <= self.clock():
            raise google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )

    async def _message(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await read_stream(request.content, MAX_BODY)
        except ValueError as e:
            raise google_error(
                400, f"request larger than {MAX_BODY} bytes", "INVALID_ARGUMENT"
            ) from e
        document = json_object(body)
        message = document.get("message") if document is not None else None
        if not isinstance(message, dict):
            raise google_error(400, "Invalid JSON payload: no message object", "INVALID_ARGUMENT")
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise google_error(
                400, "Exactly one of token, topic or condition is required", "INVALID_ARGUMENT"
            )
        if not TOKEN_PATTERN.fullmatch(token):
            raise google_error(
                400,
                "The registration token is not a valid FCM registration token",
                "INVALID_ARGUMENT",
                field="message.token",
            )
        data = message.get("data", {})
        if not isinstance(data, dict):
            raise google_error(400, "Invalid value at 'message.data'", "INVALID_ARGUMENT")
        for index, (key, value) in enumerate(data.items()):
            if not isinstance(value, str):
                raise google_error(
                    400,
                    f"Invalid value at 'message.data[{index}].value' (TYPE_STRING), {key!r}",
                    "INVALID_ARGUMENT",
                    field=f"message.data[{index}].value",
                )
        android = message.get("android", {})
        priority = android.get("priority", "NORMAL") if isinstance(android, dict) else None
        if priority not in ("NORMAL", "HIGH"):
            raise google_error(
                400, "Invalid value at 'message.android.priority'", "INVALID_ARGUMENT"
            )
        return message

    # -- POST /fcm/unregister ----------------------------------------------------------

    async def unregister(self, request: web.Request) -> web.Response:
        """Mark a registration token unregistered (the app was uninstalled)."""
        token = unregister_token(await request.read())
        if token is None:
            return json_response({"errcode": Codes.BAD_JSON, "error": "body needs a token"}, 400)
        self.unregistered.add(token)
        return json_response({"token": token, "unregistered": True})


def fcm_routes(
    config: FcmServerConfig,
    inbox: Inbox,
    *,
    faults: Faults | None = None,
    attempts: Attempts | None = None,
) -> list[web.RouteDef]:
    """The FCM stand-in's routes (see the module docstring), on a new :class:`FcmServer`.

    Args:
        config: the ``[fcm]`` table.
        inbox: where delivered messages land.
        faults: the receiver's fault injections (faults armed for a registration token
            apply); None = none.
        attempts: the receiver's attempt tally (each ``messages:send`` that reaches a token
            is noted); None = not kept.

    Raises:
        ConfigError: a service-account file is unusable.
    """
    return FcmServer(config, inbox, faults=faults, attempts=attempts).routes()
