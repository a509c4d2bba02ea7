"""A small, real OpenID Connect provider for tests: authorization code flow with PKCE.

It stands in for an IDP of the TI federation (the gematik IDP-Dienst) over HTTPS with a
certificate from a :class:`~timkit.core.tls.LocalPKI`:

* ``GET /.well-known/openid-configuration``: discovery document (JSON);
* ``GET /authorize``: no login page; the pre-set :attr:`OidcProvider.user` consents at once and
  the browser is redirected to ``redirect_uri?code=…&state=…`` (``code_challenge`` S256 and a
  registered client required);
* ``POST /token``: ``grant_type=authorization_code`` with client authentication (Basic or
  form), the exact ``redirect_uri`` and the PKCE ``code_verifier``; codes are single use;
* ``GET /jwks``: the public signing key (``kid``, ``alg`` ES256 or BP256R1).

ID tokens carry the gematik claims (``idNummer``, ``professionOID``, ``organizationName``,
``acr``, ``amr``) plus ``iss``, ``sub``, ``aud``, ``iat``, ``exp``, ``nonce``. For attack tests,
:attr:`OidcProvider.forge` may replace the signed ID token: it gets the claims the provider
would sign and returns the token string to hand out instead.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk
from yarl import URL

from timkit.core import jwt
from timkit.core.process import free_port
from timkit.core.tls import LocalPKI, server_ssl_context

CURVES = {"ES256": "P-256", "BP256R1": "BP-256"}


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    user: dict[str, Any]
    expires: float


@dataclass
class OidcProvider:
    """An OIDC provider on ``https://127.0.0.1:<free port>``.

    Args:
        pki_dir: local PKI for its TLS certificate (its ``ca.crt`` is :attr:`ca_file`).
        clients: client id → secret of the registered clients.
        alg: ID token algorithm, ``ES256`` or ``BP256R1``.
    """

    pki_dir: Path
    clients: dict[str, str]
    alg: str = "ES256"
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "pseudonym-1",
            "idNummer": "1-2arzt-01",
            "professionOID": "1.2.276.0.76.4.30",
            "organizationName": "Praxis Dr. Test",
            "given_name": "Test",
            "family_name": "Arzt",
        }
    )
    forge: Callable[[dict[str, Any]], str] | None = None
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.key = jwk.JWK.from_pem(
            jwt.generate_key(CURVES[self.alg]).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.kid = self.key.thumbprint()
        self._grants: dict[str, _Grant] = {}
        self._runner: web.AppRunner | None = None
        self.redeemed: list[dict[str, str]] = []

    @property
    def issuer(self) -> str:
        """The issuer URL (also the base of every endpoint)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients must trust."""
        return self.pki_dir / "ca.crt"

    def trusted_idp(self, client_id: str, redirect_uri: str = "") -> dict[str, Any]:
        """This provider as a ``FhirProxyConfig.idps`` entry for ``client_id``."""
        return {
            "issuer": self.issuer,
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "client_id": client_id,
            "client_secret": self.clients[client_id],
            "redirect_uri": redirect_uri,
            "ca_file": self.ca_file,
        }

    async def start(self) -> OidcProvider:
        """Serve on :attr:`port` with TLS."""
        paths = LocalPKI(self.pki_dir).ensure_server_cert("idp", ["127.0.0.1", "localhost"])
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, ssl_context=server_ssl_context(paths)
        )
        await site.start()
        return self

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """``claims`` signed with the provider's key (``kid`` set)."""
        return jwt.sign(claims, self.key, kid=self.kid, header=header or None)

    def id_token_claims(self, client_id: str, nonce: str | None) -> dict[str, Any]:
        """The claims of an ID token for the current :attr:`user`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "acr": "gematik-ehealth-loa-high",
            "amr": ["mfa", "sc", "pin"],
            **self.user,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return claims

    async def _discovery(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": [self.alg],
            }
        )

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        if client_id not in self.clients or not redirect_uri:
            return web.json_response({"error": "unauthorized_client"}, status=400)
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(
            client_id,
            redirect_uri,
            query.get("nonce"),
            query.get("code_challenge", ""),
            dict(self.user),
            time.monotonic() + 60,
        )
        target = URL(redirect_uri).update_query(code=code, state=query.get("state", ""))
        return web.Response(status=302, headers={"Location": str(target)})

    def _client(self, request: web.Request, form: dict[str, str]) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        expected = self.clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected, secret):
            return None
        return client_id

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl(await request.text()))
        self.redeemed.append(form)
        client_id = self._client(request, form)
        if client_id is None:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        grant = self._grants.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "").encode()
        challenge = jwt.b64url(hashlib.sha256(verifier).digest())
        if (
            grant is None
            or grant.expires < time.monotonic()
            or grant.client_id != client_id
            or grant.redirect_uri != form.get("redirect_uri")
            or not secrets.compare_digest(grant.challenge, challenge)
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        claims = self.id_token_claims(client_id, grant.nonce)
        claims.update(grant.user)
        id_token = self.forge(claims) if self.forge else self.sign(claims)
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )

    async def _jwks(self, _request: web.Request) -> web.Response:
        public = self.key.export_public(as_dict=True)
        public.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return web.json_response({"keys": [public]})
