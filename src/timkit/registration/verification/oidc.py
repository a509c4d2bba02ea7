"""Verfahren 1: the RD as an OpenID Connect client of the IDP-Dienst (code flow, PKCE S256).

The flow::

    start()     → authorization URL  <authorization_endpoint>?response_type=code&client_id=…
                  &redirect_uri=…&scope=openid&state=…&nonce=…&code_challenge=…
                  &code_challenge_method=S256
    … the actor authenticates at the IDP with the organisation's SMC-B (Authenticator) …
    finish()    ← /oidc/callback?code=…&state=…  → the verified ID token claims

**State** (256 random bits) is persisted in the RD database (``oidc_flows``, its digest only)
with the PKCE verifier, the nonce and how the flow was started (web or API); valid
``idp.flow_lifetime`` seconds and single use, so any RD instance sharing the database can
finish any flow.

**ID token checks (ML-128758, fail closed).** Signature by a key of the IDP's JWKS (cached
:data:`JWKS_TTL` s, refetched on an unknown ``kid`` at most every :data:`JWKS_MIN_REFRESH` s),
``alg`` ES256 or BP256R1 fitting the key (:mod:`timkit.core.jwt`), ``iss`` = the configured
issuer, ``aud`` = our ``client_id`` (``azp`` when ``aud`` has several values), ``exp``,
``iat``, ``nonce`` = the one we sent, and non-empty ``idNummer`` and ``professionOID``.
Endpoints not configured come from the discovery document (cached :data:`DISCOVERY_TTL` s).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import orjson
from jwcrypto import jwk
from yarl import URL

from timkit.core import jwt
from timkit.core.errors import TimkitError
from timkit.registration.config import IdpSettings
from timkit.registration.storage import flows

REQUIREMENT = "ML-128758"
ID_TOKEN_ALGS = ("ES256", "BP256R1")
JWKS_TTL = 600.0
JWKS_MIN_REFRESH = 30.0
DISCOVERY_TTL = 3600.0
TIMEOUT = 10.0
MAX_BODY = 256 * 1024


def unavailable(message: str) -> TimkitError:
    """503 for an IDP that cannot be reached or answers nonsense."""
    return TimkitError(503, "M_UNAVAILABLE", message, requirement=REQUIREMENT)


def code_challenge(verifier: str) -> str:
    """PKCE ``S256`` challenge of ``verifier`` (RFC 7636)."""
    return jwt.b64url(hashlib.sha256(verifier.encode()).digest())


class OidcClient:
    """The RD's client of one IDP (see the module docstring).

    Args:
        settings: the ``idp`` config section.
        http: the outbound HTTP session.
        redirect_uri: the RD's ``/oidc/callback`` URL (used when not configured).
        clock: monotonic seconds, for the caches.
    """

    def __init__(
        self,
        settings: IdpSettings,
        http: aiohttp.ClientSession,
        redirect_uri: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.redirect_uri = settings.redirect_uri or redirect_uri
        self._http = http
        self._clock = clock
        self._ssl = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file is not None else None
        )
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._jwks: tuple[float, list[jwk.JWK]] | None = None

    @property
    def enabled(self) -> bool:
        """Whether an IDP is configured (Verfahren 1 available)."""
        return bool(self.settings.issuer)

    def new_flow(self, mode: str, lang: str) -> tuple[str, flows.OidcFlow]:
        """A fresh ``state`` with its PKCE verifier and nonce (to be stored by the caller)."""
        state = secrets.token_urlsafe(32)
        return state, flows.OidcFlow(
            verifier=secrets.token_urlsafe(48),
            nonce=secrets.token_urlsafe(24),
            mode=mode,
            lang=lang,
        )

    async def authorization_url(self, state: str, flow: flows.OidcFlow) -> str:
        """The IDP URL the actor's browser (or script) opens for ``state``."""
        endpoint = self.settings.authorization_endpoint or await self._endpoint(
            "authorization_endpoint"
        )
        return str(
            URL(endpoint).update_query(
                response_type="code",
                client_id=self.settings.client_id,
                redirect_uri=self.redirect_uri,
                scope=" ".join(self.settings.scopes),
                state=state,
                nonce=flow.nonce,
                code_challenge=code_challenge(flow.verifier),
                code_challenge_method="S256",
            )
        )

    async def redeem(self, code: str, flow: flows.OidcFlow) -> dict[str, Any]:
        """Redeem ``code`` with the flow's verifier; the verified ID token claims.

        Raises:
            TokenError: 401 when the IDP refuses the code or the ID token fails a check.
            TimkitError: 503 when the IDP cannot be reached.
        """
        id_token = await self._exchange(code, flow)
        return await self.verify_id_token(id_token, flow.nonce)

    async def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``token`` if it is a valid ID token of the IDP for us with ``nonce``."""
        settings = self.settings
        try:
            header = jwt.header_of(token)
            kid = header.get("kid")
            key = await self._key_for(token, kid if isinstance(kid, str) else None)
            claims = jwt.verify(
                token,
                key,
                algs=ID_TOKEN_ALGS,
                issuer=settings.issuer,
                audience=settings.client_id,
                required=("iss", "aud", "exp", "iat", "nonce", "idNummer", "professionOID"),
            )
        except jwt.TokenError as e:
            raise jwt.TokenError(f"ID token: {e.message}", requirement=REQUIREMENT) from e
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != settings.client_id:
            raise jwt.TokenError("ID token: azp is not our client id", requirement=REQUIREMENT)
        if not isinstance(claims["nonce"], str) or not secrets.compare_digest(
            claims["nonce"], nonce
        ):
            raise jwt.TokenError("ID token: nonce does not match", requirement=REQUIREMENT)
        for name in ("idNummer", "professionOID"):
            value = claims[name]
            if not isinstance(value, str) or not value.strip():
                raise jwt.TokenError(f"ID token: {name} is empty", requirement=REQUIREMENT)
        return claims

    async def _key_for(self, token: str, kid: str | None) -> jwk.JWK:
        keys = await self._keys(refresh=False)
        if kid is not None and not any(k.get("kid") == kid for k in keys):
            keys = await self._keys(refresh=True)
        candidates = [k for k in keys if kid is None or k.get("kid") == kid]
        if not candidates:
            raise jwt.TokenError(f"no key {kid!r} in the IDP's JWKS")
        last: jwt.TokenError | None = None
        for key in candidates:
            try:
                jwt.verify_signature(token, key, ID_TOKEN_ALGS)
            except jwt.TokenError as e:
                last = e
                continue
            return key
        assert last is not None
        raise last

    async def _keys(self, *, refresh: bool) -> list[jwk.JWK]:
        now = self._clock()
        if self._jwks is not None:
            fetched, keys = self._jwks
            if (now - fetched < JWKS_TTL and not refresh) or now - fetched < JWKS_MIN_REFRESH:
                return keys
        uri = self.settings.jwks_uri or await self._endpoint("jwks_uri")
        keys = _signing_keys(await self._get_json(uri))
        self._jwks = (now, keys)
        return keys

    async def _endpoint(self, name: str) -> str:
        now = self._clock()
        if self._discovery is None or self._discovery[0] <= now:
            url = self.settings.discovery or (
                self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            self._discovery = (now + DISCOVERY_TTL, await self._get_json(url))
        value = self._discovery[1].get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise unavailable(f"the IDP's discovery document has no {name}")
        return value

    async def _exchange(self, code: str, flow: flows.OidcFlow) -> str:
        settings = self.settings
        endpoint = settings.token_endpoint or await self._endpoint("token_endpoint")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": flow.verifier,
            "client_id": settings.client_id,
        }
        headers = {"Accept": "application/json"}
        if settings.client_secret:
            pair = f"{quote_plus(settings.client_id)}:{quote_plus(settings.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        status, document = await self._request("POST", endpoint, headers, form)
        if status >= 500 or document is None:
            raise unavailable(f"the IDP's token endpoint failed ({status})")
        if status != 200:
            raise jwt.TokenError(
                f"the IDP did not redeem the authorization code ({status} "
                f"{document.get('error', 'error')})",
                requirement=REQUIREMENT,
            )
        id_token = document.get("id_token")
        if not isinstance(id_token, str):
            raise jwt.TokenError("the IDP returned no id_token", requirement=REQUIREMENT)
        return id_token

    async def _get_json(self, url: str) -> dict[str, Any]:
        status, document = await self._request("GET", url, {"Accept": "application/json"}, None)
        if status != 200 or document is None:
            raise unavailable(f"{url} answered {status} without a JSON object")
        return document

    async def _request(
        self, method: str, url: str, headers: dict[str, str], form: dict[str, str] | None
    ) -> tuple[int, dict[str, Any] | None]:
        try:
            async with (
                asyncio.timeout(TIMEOUT),
                self._http.request(
                    method, url, data=form, headers=headers, ssl=self._ssl, allow_redirects=False
                ) as response,
            ):
                body = await response.content.read(MAX_BODY + 1)
                status = response.status
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
            raise unavailable(f"cannot reach the IDP at {url}: {e}") from e
        if len(body) > MAX_BODY:
            raise unavailable(f"{url} answered more than {MAX_BODY} bytes")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return status, None
        return status, document if isinstance(document, dict) else None


def _signing_keys(document: dict[str, Any]) -> list[jwk.JWK]:
    """The EC signing keys (P-256, brainpoolP256r1) of a JWKS; others are ignored."""
    keys: list[jwk.JWK] = []
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "EC":
            continue
        if entry.get("crv") not in jwt.CURVE_ALGS or entry.get("use", "sig") != "sig":
            continue
        try:
            keys.append(jwk.JWK(**{k: v for k, v in entry.items() if k != "d"}))
        except Exception:  # noqa: S112 - jwcrypto raises several types for a bad key
            continue
    return keys
