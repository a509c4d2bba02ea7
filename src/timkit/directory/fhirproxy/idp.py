"""Owner sign-in at a trusted IDP: authorization code flow with PKCE (ML-123873).

The flow (api-vzd ``I_VZD_Owner.yaml``, sequence diagram ``owner_auth``)::

    GET /owner-authenticate[?idp=<issuer>]      (no Authorization header)
        302 Location: <authorization_endpoint>?response_type=code&client_id=…&redirect_uri=…
                      &scope=openid&state=…&nonce=…&code_challenge=…&code_challenge_method=S256
    … the user authenticates at the IDP with the smartcard …
    GET /signin-gematik-idp-dienst?code=…&state=…
        the code is redeemed at the IDP's token endpoint with the PKCE verifier; the ID token
        is verified with the IDP's JWKS → owner-accesstoken (``sub`` = ``idNummer``)

**Choosing the IDP.** ``idp`` names the issuer of one of the configured ``idps``; without it
the first configured IDP is used (the gematik IDP-Dienst in a TI deployment). The choice is
bound to the ``state`` the proxy issues, so the sign-in redeems the code only at that IDP.

**State.** Random (256 bits), single use, valid :data:`LOGIN_TTL` seconds, kept in this
process's memory with its PKCE verifier and nonce. An instance only redeems states it issued:
several instances behind a load balancer need session affinity for this flow.

**Checks (fail closed).** ID token signature with a key from the IDP's JWKS (``jwks_uri``,
cached :data:`JWKS_TTL` s, refetched on an unknown ``kid`` at most every
:data:`JWKS_MIN_REFRESH` s), ``alg`` ES256 or BP256R1 fitting the key, ``iss`` = the
configured issuer, ``aud`` = our ``client_id`` (``azp`` too when ``aud`` has several values),
``exp``/``iat``/``nbf``, ``nonce`` = the one we sent, and a non-empty ``idNummer``.

The authorization endpoint comes from the IDP's OpenID discovery document
(``<issuer>/.well-known/openid-configuration``, JSON), cached :data:`DISCOVERY_TTL` s; the
security-relevant endpoints (token, JWKS) are configured.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from jwcrypto import jwk
from yarl import URL

from timkit.core import jwt
from timkit.core.errors import TimkitError
from timkit.directory.fhirproxy.config import TrustedIdp
from timkit.directory.fhirproxy.fetch import json_object, read_limited

REQUIREMENT = "ML-123873"
ID_TOKEN_ALGS = ("ES256", "BP256R1")
LOGIN_TTL = 600.0
MAX_PENDING = 10_000
JWKS_TTL = 600.0
JWKS_MIN_REFRESH = 30.0
DISCOVERY_TTL = 3600.0
TIMEOUT = 10.0
MAX_BODY = 256 * 1024
SCOPE = "openid"


def unavailable(message: str) -> TimkitError:
    """503 for an IDP that could not be reached or failed."""
    return TimkitError(503, "temporarily_unavailable", message, requirement=REQUIREMENT)


@dataclass(frozen=True)
class PendingLogin:
    """What the proxy remembers between the redirect to the IDP and the sign-in."""

    issuer: str
    verifier: str
    nonce: str
    redirect_uri: str
    expires: float


class LoginStates:
    """Single-use ``state`` values of started sign-ins (bounded, in memory).

    Args:
        clock: monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending: OrderedDict[str, PendingLogin] = OrderedDict()

    def issue(self, issuer: str, redirect_uri: str) -> tuple[str, PendingLogin]:
        """A fresh state with its PKCE verifier and nonce."""
        now = self._clock()
        while self._pending and next(iter(self._pending.values())).expires < now:
            self._pending.popitem(last=False)
        state = secrets.token_urlsafe(32)
        login = PendingLogin(
            issuer=issuer,
            verifier=secrets.token_urlsafe(48),
            nonce=secrets.token_urlsafe(24),
            redirect_uri=redirect_uri,
            expires=now + LOGIN_TTL,
        )
        self._pending[state] = login
        if len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return state, login

    def take(self, state: str) -> PendingLogin | None:
        """The login ``state`` started, removed (single use); None if unknown or expired."""
        login = self._pending.pop(state, None)
        if login is None or login.expires < self._clock():
            return None
        return login


def code_challenge(verifier: str) -> str:
    """PKCE ``S256`` challenge of ``verifier`` (RFC 7636)."""
    return jwt.b64url(hashlib.sha256(verifier.encode()).digest())


class IdpClient:
    """Starts sign-ins at, and redeems codes from, the configured trusted IDPs.

    Args:
        idps: the trusted IDPs (the first is the default).
        http: the outbound session (requests pass their own TLS context).
        default_redirect: our ``/signin-gematik-idp-dienst`` URL, used where an IDP's
            ``redirect_uri`` is empty.
        clock: monotonic seconds (caches and states).
    """

    def __init__(
        self,
        idps: Sequence[TrustedIdp],
        http: aiohttp.ClientSession,
        default_redirect: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idps = {idp.issuer: idp for idp in idps}
        self._default = idps[0].issuer if idps else None
        self._http = http
        self._redirect = default_redirect
        self._clock = clock
        self.states = LoginStates(clock)
        self._ssl = {
            idp.issuer: ssl.create_default_context(
                cafile=str(idp.ca_file) if idp.ca_file is not None else None
            )
            for idp in idps
        }
        self._discovery: dict[str, tuple[float, str]] = {}
        self._jwks: dict[str, tuple[float, list[jwk.JWK]]] = {}

    @property
    def configured(self) -> bool:
        """Whether any IDP is trusted."""
        return bool(self._idps)

    def choose(self, issuer: str | None) -> TrustedIdp:
        """The IDP with ``issuer``, or the default one.

        Raises:
            TimkitError: 400 ``invalid_request`` for an issuer that is not configured.
        """
        name = issuer or self._default
        idp = self._idps.get(name) if name else None
        if idp is None:
            raise TimkitError(
                400,
                "invalid_request",
                f"idp {issuer!r} is not a trusted IDP",
                requirement=REQUIREMENT,
            )
        return idp

    async def authorization_url(self, issuer: str | None) -> str:
        """Start a sign-in: the IDP authorization URL to redirect the client to."""
        idp = self.choose(issuer)
        endpoint = await self._authorization_endpoint(idp)
        redirect = idp.redirect_uri or self._redirect
        state, login = self.states.issue(idp.issuer, redirect)
        return str(
            URL(endpoint).update_query(
                response_type="code",
                client_id=idp.client_id,
                redirect_uri=redirect,
                scope=SCOPE,
                state=state,
                nonce=login.nonce,
                code_challenge=code_challenge(login.verifier),
                code_challenge_method="S256",
            )
        )

    async def redeem(self, code: str, state: str) -> dict[str, Any]:
        """Finish a sign-in: the verified ID token claims for ``code`` under ``state``.

        Raises:
            TokenError: 401 for an unknown, expired or used state, a code the IDP refuses,
                or an ID token that fails a check.
            TimkitError: 503 when the IDP cannot be reached.
        """
        login = self.states.take(state)
        if login is None:
            raise jwt.TokenError("unknown, expired or already used state", requirement=REQUIREMENT)
        idp = self._idps[login.issuer]
        id_token = await self._exchange(idp, login, code)
        return await self.verify_id_token(idp, id_token, login.nonce)

    async def verify_id_token(self, idp: TrustedIdp, token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``token`` if it is a valid ID token of ``idp`` for us with ``nonce``."""
        try:
            header = jwt.header_of(token)
            kid = header.get("kid")
            key = await self._key_for(idp, token, kid if isinstance(kid, str) else None)
            claims = jwt.verify(
                token,
                key,
                algs=ID_TOKEN_ALGS,
                issuer=idp.issuer,
                audience=idp.client_id,
                required=("iss", "sub", "aud", "exp", "iat", "nonce", "idNummer"),
            )
        except jwt.TokenError as e:
            raise jwt.TokenError(f"ID token: {e.message}", requirement=REQUIREMENT) from e
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != idp.client_id:
            raise jwt.TokenError("ID token: azp is not our client id", requirement=REQUIREMENT)
        if not isinstance(claims["nonce"], str) or not secrets.compare_digest(
            claims["nonce"], nonce
        ):
            raise jwt.TokenError("ID token: nonce does not match", requirement=REQUIREMENT)
        telematik_id = claims["idNummer"]
        if not isinstance(telematik_id, str) or not telematik_id.strip():
            raise jwt.TokenError("ID token: idNummer is empty", requirement=REQUIREMENT)
        return claims

    async def _key_for(self, idp: TrustedIdp, token: str, kid: str | None) -> jwk.JWK:
        keys = await self._keys(idp, refresh=False)
        if kid is not None and not any(k.get("kid") == kid for k in keys):
            keys = await self._keys(idp, refresh=True)
        candidates = [k for k in keys if kid is None or k.get("kid") == kid]
        if not candidates:
            raise jwt.TokenError(f"no key {kid!r} in the IDP's JWKS")
        failures: list[jwt.TokenError] = []
        for key in candidates:
            try:
                jwt.verify_signature(token, key, ID_TOKEN_ALGS)
            except jwt.TokenError as e:
                failures.append(e)
                continue
            return key
        if len(failures) == 1:
            raise failures[0]
        raise jwt.TokenError("signature does not verify with any of the IDP's keys")

    async def _keys(self, idp: TrustedIdp, *, refresh: bool) -> list[jwk.JWK]:
        now = self._clock()
        cached = self._jwks.get(idp.jwks_uri)
        if cached is not None:
            fetched, keys = cached
            fresh = now - fetched < JWKS_TTL
            if (fresh and not refresh) or now - fetched < JWKS_MIN_REFRESH:
                return keys
        document = await self._get_json(idp, idp.jwks_uri)
        keys = _signing_keys(document)
        self._jwks[idp.jwks_uri] = (now, keys)
        return keys

    async def _authorization_endpoint(self, idp: TrustedIdp) -> str:
        now = self._clock()
        cached = self._discovery.get(idp.issuer)
        if cached is not None and cached[0] > now:
            return cached[1]
        url = idp.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(idp, url)
        endpoint = document.get("authorization_endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise unavailable(
                f"the discovery document of {idp.issuer} has no authorization_endpoint"
            )
        self._discovery[idp.issuer] = (now + DISCOVERY_TTL, endpoint)
        return endpoint

    async def _exchange(self, idp: TrustedIdp, login: PendingLogin, code: str) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": login.redirect_uri,
            "code_verifier": login.verifier,
            "client_id": idp.client_id,
        }
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if idp.client_secret:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            pair = f"{quote_plus(idp.client_id)}:{quote_plus(idp.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            async with (
                asyncio.timeout(TIMEOUT),
                self._http.post(
                    idp.token_endpoint,
                    data=form,
                    ssl=self._ssl[idp.issuer],
                    allow_redirects=False,
                    headers=headers,
                ) as response,
            ):
                status = response.status
                body = await read_limited(response, MAX_BODY)
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
            raise unavailable(f"cannot reach the token endpoint of {idp.issuer}: {e}") from e
        if status >= 500:
            raise unavailable(f"the token endpoint of {idp.issuer} failed ({status})")
        document = json_object(body) or {}
        if status != 200:
            error = document.get("error", "error")
            raise jwt.TokenError(
                f"the IDP did not redeem the authorization code ({status} {error})",
                requirement=REQUIREMENT,
            )
        id_token = document.get("id_token")
        if not isinstance(id_token, str):
            raise jwt.TokenError("the IDP returned no id_token", requirement=REQUIREMENT)
        return id_token

    async def _get_json(self, idp: TrustedIdp, url: str) -> dict[str, Any]:
        try:
            async with (
                asyncio.timeout(TIMEOUT),
                self._http.get(
                    url,
                    ssl=self._ssl[idp.issuer],
                    allow_redirects=False,
                    headers={"Accept": "application/json", "Accept-Encoding": "identity"},
                ) as response,
            ):
                status = response.status
                body = await read_limited(response, MAX_BODY)
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
            raise unavailable(f"cannot fetch {url}: {e}") from e
        document = json_object(body)
        if status != 200 or document is None:
            raise unavailable(f"{url} answered {status} without a JSON object")
        return document


def _signing_keys(document: dict[str, Any]) -> list[jwk.JWK]:
    """The EC signing keys (P-256, brainpoolP256r1) of a JWKS; others are ignored."""
    keys: list[jwk.JWK] = []
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "EC":
            continue
        if entry.get("crv") not in jwt.CURVE_ALGS or entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k != "d"}
        try:
            keys.append(jwk.JWK(**public))
        except Exception:  # noqa: S112 - jwcrypto raises several types for a bad key
            continue
    return keys
