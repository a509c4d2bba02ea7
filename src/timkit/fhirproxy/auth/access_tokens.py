"""The access tokens the FHIR-Proxy issues, and the one check every protected route uses.

Four kinds, each with its issuer path, audience path and scope under the public base URL
(seed 003 §5.2.1.2 to 5.2.1.4, HOWTO Authenticate):

============  =============================  ===========================  ==============
kind          issued by (``iss``)            for (``aud``)                lifetime
============  =============================  ===========================  ==============
ti-provider   ``/token``                     ``/ti-provider-authenticate``  5 min
provider      ``/ti-provider-authenticate``  ``/tim-provider-services``   30 min
search        ``/tim-authenticate``          ``/search``                  24 h
owner         ``/owner-authenticate``        ``/owner``                   24 h
============  =============================  ===========================  ==============

All are ES256 JWTs signed with the token signer; its certificate is published at
``/.well-known/jwks.json``. :func:`authorize` is the gate: 401 (with ``WWW-Authenticate``)
for a missing, malformed, expired or foreign token; 403 for a valid token of another kind.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography import x509
from jwcrypto import jwk

from timkit.core import jwt
from timkit.fhirproxy.config import TokenLifetimes


class Kind(StrEnum):
    """The token kinds the FHIR-Proxy issues."""

    TI_PROVIDER = "ti-provider"
    PROVIDER = "provider"
    SEARCH = "search"
    OWNER = "owner"


@dataclass(frozen=True)
class KindSpec:
    """Where a kind of token comes from and what it is for."""

    issuer_path: str
    audience_path: str
    scope: str
    requirement: str
    actor_prefix: str


SPECS: dict[Kind, KindSpec] = {
    Kind.TI_PROVIDER: KindSpec(
        "/token", "/ti-provider-authenticate", "ti-provider", "ML-123881", "provider"
    ),
    Kind.PROVIDER: KindSpec(
        "/ti-provider-authenticate",
        "/tim-provider-services",
        "tim-provider-services",
        "ML-123881",
        "provider",
    ),
    Kind.SEARCH: KindSpec("/tim-authenticate", "/search", "search", "ML-123485", "user"),
    Kind.OWNER: KindSpec("/owner-authenticate", "/owner", "owner", "ML-123873", "owner"),
}


@dataclass(frozen=True)
class Issued:
    """A freshly issued token."""

    token: str
    expires_in: int
    claims: dict[str, Any]


class TokenService:
    """Issues and checks the proxy's access tokens.

    Args:
        key: the ES256 signing key (private JWK).
        certificate: its certificate (published in the JWKS as ``x5c``).
        base: public base URL (no trailing slash).
        lifetimes: seconds per kind.
        extra_audiences: additional ``aud`` values per kind (the seed's ``/tim-search``).
    """

    def __init__(
        self,
        key: jwk.JWK,
        certificate: x509.Certificate,
        base: str,
        lifetimes: TokenLifetimes,
        extra_audiences: dict[Kind, list[str]] | None = None,
    ) -> None:
        self._key = key
        self._public = jwk.JWK.from_json(key.export_public())
        self.certificate = certificate
        self.kid = key.thumbprint()
        self.base = base
        self._lifetimes = {
            Kind.TI_PROVIDER: lifetimes.ti_provider,
            Kind.PROVIDER: lifetimes.provider,
            Kind.SEARCH: lifetimes.search,
            Kind.OWNER: lifetimes.owner,
        }
        self._extra = extra_audiences or {}
        self._issuers = {self.issuer(k): k for k in Kind}
        self._cache: OrderedDict[str, tuple[Kind, dict[str, Any]]] = OrderedDict()

    def issuer(self, kind: Kind) -> str:
        """The ``iss`` of tokens of ``kind``."""
        return self.base + SPECS[kind].issuer_path

    def audience(self, kind: Kind) -> str:
        """The ``aud`` a token of ``kind`` is for."""
        return self.base + SPECS[kind].audience_path

    def issue(self, kind: Kind, subject: str, extra: dict[str, Any] | None = None) -> Issued:
        """Sign a token of ``kind`` for ``subject``."""
        now = int(time.time())
        lifetime = self._lifetimes[kind]
        claims: dict[str, Any] = {
            "iss": self.issuer(kind),
            "sub": subject,
            "aud": [self.audience(kind), *self._extra.get(kind, [])],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": SPECS[kind].scope,
            **(extra or {}),
        }
        token = jwt.sign(claims, self._key, kid=self.kid, typ="JWT")
        return Issued(token, lifetime, claims)

    def check(self, token: str, kind: Kind) -> dict[str, Any]:
        """The claims of ``token`` if it is a valid token of ``kind``.

        Raises:
            TokenError: 401 when the token is not one of ours or not valid (expired, bad
                signature, wrong algorithm); 403 when it is valid but of another kind.
        """
        requirement = SPECS[kind].requirement
        cached = self._cache.get(token)
        if cached is not None and cached[1]["exp"] >= time.time():
            found, claims = cached
        else:
            try:
                claims = jwt.verify(
                    token,
                    self._public,
                    algs=("ES256",),
                    issuer=list(self._issuers),
                    audience=None,
                    required=("exp", "iat", "iss", "sub", "aud"),
                )
            except jwt.TokenError as e:
                raise jwt.TokenError(e.message, requirement=requirement) from e
            found = self._issuers[claims["iss"]]
            self._remember(token, found, claims)
        if found != kind:
            raise jwt.TokenError(
                f"a {found} token does not grant access here; a {kind} token is required",
                requirement=requirement,
                status=403,
            )
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if self.audience(kind) not in aud and not set(self._extra.get(kind, [])) & set(aud):
            raise jwt.TokenError(
                "token audience does not match", requirement=requirement, status=403
            )
        return claims

    def _remember(self, token: str, kind: Kind, claims: dict[str, Any]) -> None:
        self._cache[token] = (kind, claims)
        if len(self._cache) > 10_000:
            self._cache.popitem(last=False)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS of the token signer (with its certificate as ``x5c``)."""
        public = self._public.export_public(as_dict=True)
        public.update(
            {"kid": self.kid, "use": "sig", "alg": "ES256", "x5c": jwt.x5c_of([self.certificate])}
        )
        return {"keys": [public]}
