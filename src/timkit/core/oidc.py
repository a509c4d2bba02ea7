"""An OpenID Connect relying party of one IDP: authorization code flow with PKCE ``S256``.

The flow::

    authorization_url()  → <authorization_endpoint>?response_type=code&client_id=…
                           &redirect_uri=…&scope=…&state=…&nonce=…&code_challenge=…
                           &code_challenge_method=S256
    … the user authenticates at the IDP (in gematik's TI with a smartcard) …
    redeem()             ← code: redeemed at the token endpoint with the PKCE verifier;
                           the ID token's verified claims

Keeping ``state`` (with its verifier, nonce and redirect URI) between the two steps is the
caller's business (:func:`new_state`, :func:`new_verifier`, :func:`new_nonce` make them).

**Endpoints.** Each of ``authorization_endpoint``, ``token_endpoint`` and ``jwks_uri`` is
the configured one, else taken from the discovery document (``discovery``, default
``<issuer>/.well-known/openid-configuration``; cached :data:`DISCOVERY_TTL` s).

**ID token checks (fail closed).** Signature by a key of the IDP's JWKS (EC P-256 or
brainpoolP256r1 signing keys only; cached :data:`JWKS_TTL` s, refetched on an unknown
``kid`` at most every :data:`JWKS_MIN_REFRESH` s), ``alg`` ES256 or BP256R1 fitting the key
(:mod:`timkit.core.jwt`), ``iss`` = the issuer, ``aud`` = our ``client_id`` (and ``azp`` =
it when ``aud`` has several values), ``exp``/``iat``/``nbf``, ``nonce`` = the one we sent,
plus the caller's required claims and non-empty string claims.

**Errors.** A check that fails, or a code the IDP refuses (4xx), is a 401
:class:`~timkit.core.jwt.TokenError`; an IDP that cannot be reached, answers 5xx or answers
something that is no JSON object is a 503 :class:`~timkit.core.errors.TimkitError` with the
caller's ``errcode``. Both carry the caller's requirement id. Outbound requests follow no
redirects, take at most :data:`TIMEOUT` s and read at most :data:`MAX_BODY` bytes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from jwcrypto import jwk
from yarl import URL

from timkit.core import jwt
from timkit.core.errors import TimkitError
from timkit.core.web import json_object, read_limited

ID_TOKEN_ALGS = ("ES256", "BP256R1")
STANDARD_CLAIMS = ("iss", "aud", "exp", "iat", "nonce")
"""Claims every ID token must carry."""
JWKS_TTL = 600.0
JWKS_MIN_REFRESH = 30.0
DISCOVERY_TTL = 3600.0
TIMEOUT = 10.0
MAX_BODY = 256 * 1024
_ACCEPT_JSON = {"Accept": "application/json", "Accept-Encoding": "identity"}


def code_challenge(verifier: str) -> str:
    """PKCE ``S256`` challenge of ``verifier`` (RFC 7636)."""
    return jwt.b64url(hashlib.sha256(verifier.encode()).digest())


def new_state() -> str:
    """A fresh ``state`` (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def new_verifier() -> str:
    """A fresh PKCE ``code_verifier`` (384 random bits, URL-safe, RFC 7636 §4.1)."""
    return secrets.token_urlsafe(48)


def new_nonce() -> str:
    """A fresh ``nonce`` (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Provider:
    """Where and as whom we talk to one IDP.

    Attributes:
        issuer: the IDP's ``iss``.
        client_id: our client id there (the ``aud`` of its ID tokens).
        client_secret: our secret (HTTP Basic at the token endpoint); empty = public client.
        discovery: URL of the discovery document; empty = derived from ``issuer``.
        authorization_endpoint: empty = from discovery.
        token_endpoint: empty = from discovery.
        jwks_uri: empty = from discovery.
        ca_file: CA bundle for the IDP's TLS certificate; None = system trust store.
    """

    issuer: str
    client_id: str
    client_secret: str = ""
    discovery: str = ""
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    jwks_uri: str = ""
    ca_file: Path | None = None

    @property
    def discovery_url(self) -> str:
        """The discovery document's URL."""
        return self.discovery or self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class RelyingParty:
    """Our client of one IDP (see the module docstring).

    Args:
        provider: the IDP.
        http: the outbound session (requests pass their own TLS context).
        requirement: requirement id carried by every error.
        unavailable_code: ``errcode`` of the 503 for an unreachable or failing IDP.
        required: claims the ID token must carry besides :data:`STANDARD_CLAIMS`.
        non_empty: claims that must be non-empty strings (required too).
        clock: monotonic seconds, for the caches.
    """

    def __init__(
        self,
        provider: Provider,
        http: aiohttp.ClientSession,
        *,
        requirement: str,
        unavailable_code: str,
        required: Sequence[str] = (),
        non_empty: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.requirement = requirement
        self._http = http
        self._unavailable_code = unavailable_code
        self._required = tuple(dict.fromkeys([*STANDARD_CLAIMS, *required, *non_empty]))
        self._non_empty = tuple(non_empty)
        self._clock = clock
        self._ssl = ssl.create_default_context(
            cafile=str(provider.ca_file) if provider.ca_file is not None else None
        )
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._jwks: tuple[float, list[jwk.JWK]] | None = None

    def unavailable(self, message: str) -> TimkitError:
        """503 for an IDP that cannot be reached or answers nonsense."""
        return TimkitError(503, self._unavailable_code, message, requirement=self.requirement)

    def _rejected(self, message: str) -> jwt.TokenError:
        return jwt.TokenError(message, requirement=self.requirement)

    async def endpoint(self, name: str) -> str:
        """The endpoint ``name`` (``authorization_endpoint``, ``token_endpoint``,
        ``jwks_uri``): configured, else from the discovery document.

        Raises:
            TimkitError: 503 when discovery fails or has no http(s) URL for ``name``.
        """
        configured = getattr(self.provider, name, "")
        if configured:
            return str(configured)
        now = self._clock()
        if self._discovery is None or self._discovery[0] <= now:
            self._discovery = (
                now + DISCOVERY_TTL,
                await self._get_json(self.provider.discovery_url),
            )
        value = self._discovery[1].get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise self.unavailable(
                f"the discovery document of {self.provider.issuer} has no {name}"
            )
        return value

    async def authorization_url(
        self, *, redirect_uri: str, scope: str, state: str, nonce: str, verifier: str
    ) -> str:
        """The IDP URL that starts a sign-in for ``state`` (PKCE challenge of ``verifier``)."""
        endpoint = await self.endpoint("authorization_endpoint")
        return str(
            URL(endpoint).update_query(
                response_type="code",
                client_id=self.provider.client_id,
                redirect_uri=redirect_uri,
                scope=scope,
                state=state,
                nonce=nonce,
                code_challenge=code_challenge(verifier),
                code_challenge_method="S256",
            )
        )

    async def redeem(
        self, code: str, *, verifier: str, redirect_uri: str, nonce: str
    ) -> dict[str, Any]:
        """Redeem ``code`` with the PKCE ``verifier``; the verified ID token claims.

        Raises:
            TokenError: 401 when the IDP refuses the code or the ID token fails a check.
            TimkitError: 503 when the IDP cannot be reached or fails.
        """
        id_token = await self._exchange(code, verifier, redirect_uri)
        return await self.verify_id_token(id_token, nonce)

    async def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``token`` if it is a valid ID token of the IDP for us with ``nonce``.

        Raises:
            TokenError: 401 naming the failed check.
            TimkitError: 503 when the JWKS cannot be fetched.
        """
        client_id = self.provider.client_id
        try:
            header = jwt.header_of(token)
            kid = header.get("kid")
            key = await self._key_for(token, kid if isinstance(kid, str) else None)
            claims = jwt.verify(
                token,
                key,
                algs=ID_TOKEN_ALGS,
                issuer=self.provider.issuer,
                audience=client_id,
                required=self._required,
            )
        except jwt.TokenError as e:
            raise self._rejected(f"ID token: {e.message}") from e
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
            raise self._rejected("ID token: azp is not our client id")
        if not isinstance(claims["nonce"], str) or not secrets.compare_digest(
            claims["nonce"], nonce
        ):
            raise self._rejected("ID token: nonce does not match")
        for name in self._non_empty:
            value = claims[name]
            if not isinstance(value, str) or not value.strip():
                raise self._rejected(f"ID token: {name} is empty")
        return claims

    async def _key_for(self, token: str, kid: str | None) -> jwk.JWK:
        keys = await self._keys(refresh=False)
        if kid is not None and not any(k.get("kid") == kid for k in keys):
            keys = await self._keys(refresh=True)
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

    async def _keys(self, *, refresh: bool) -> list[jwk.JWK]:
        now = self._clock()
        if self._jwks is not None:
            fetched, keys = self._jwks
            if (now - fetched < JWKS_TTL and not refresh) or now - fetched < JWKS_MIN_REFRESH:
                return keys
        keys = signing_keys(await self._get_json(await self.endpoint("jwks_uri")))
        self._jwks = (now, keys)
        return keys

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        provider = self.provider
        endpoint = await self.endpoint("token_endpoint")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": provider.client_id,
        }
        headers = dict(_ACCEPT_JSON)
        if provider.client_secret:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            pair = f"{quote_plus(provider.client_id)}:{quote_plus(provider.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            async with (
                asyncio.timeout(TIMEOUT),
                self._http.post(
                    endpoint, data=form, ssl=self._ssl, allow_redirects=False, headers=headers
                ) as response,
            ):
                status = response.status
                body = await read_limited(response, MAX_BODY)
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
            raise self.unavailable(
                f"cannot reach the token endpoint of {provider.issuer}: {e}"
            ) from e
        if status >= 500:
            raise self.unavailable(f"the token endpoint of {provider.issuer} failed ({status})")
        document = json_object(body)
        if status != 200:
            error = (document or {}).get("error", "error")
            raise self._rejected(
                f"the IDP did not redeem the authorization code ({status} {error})"
            )
        if document is None:
            raise self.unavailable(
                f"the token endpoint of {provider.issuer} answered without a JSON object"
            )
        id_token = document.get("id_token")
        if not isinstance(id_token, str):
            raise self._rejected("the IDP returned no id_token")
        return id_token

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with (
                asyncio.timeout(TIMEOUT),
                self._http.get(
                    url, ssl=self._ssl, allow_redirects=False, headers=_ACCEPT_JSON
                ) as response,
            ):
                status = response.status
                body = await read_limited(response, MAX_BODY)
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
            raise self.unavailable(f"cannot fetch {url}: {e}") from e
        document = json_object(body)
        if status != 200 or document is None:
            raise self.unavailable(f"{url} answered {status} without a JSON object")
        return document


def signing_keys(document: dict[str, Any]) -> list[jwk.JWK]:
    """The EC signing keys (P-256, brainpoolP256r1) of a JWKS, public parts only; other
    keys (other types or curves, ``use`` other than ``sig``, unparsable) are ignored."""
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
