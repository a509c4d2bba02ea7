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

**Checks (fail closed)** are those of :mod:`timkit.core.oidc` (ID token signature with a
key from the IDP's JWKS, ``alg``, ``iss``, ``aud``/``azp``, ``exp``/``iat``/``nbf``,
``nonce``), plus ``sub`` present and a non-empty ``idNummer``.

The authorization endpoint comes from the IDP's OpenID discovery document
(``<issuer>/.well-known/openid-configuration``, JSON), cached
:data:`~timkit.core.oidc.DISCOVERY_TTL` s; the security-relevant endpoints (token, JWKS) are
configured.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from timkit.core import jwt, oidc
from timkit.core.errors import TimkitError
from timkit.fhirproxy.config import TrustedIdp

REQUIREMENT = "ML-123873"
UNAVAILABLE = "temporarily_unavailable"
LOGIN_TTL = 600.0
MAX_PENDING = 10_000
SCOPE = "openid"


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
        state = oidc.new_state()
        login = PendingLogin(
            issuer=issuer,
            verifier=oidc.new_verifier(),
            nonce=oidc.new_nonce(),
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


def relying_party(
    idp: TrustedIdp, http: aiohttp.ClientSession, clock: Callable[[], float] = time.monotonic
) -> oidc.RelyingParty:
    """Our OIDC client of ``idp``: token endpoint and JWKS configured, the authorization
    endpoint from discovery; ID tokens must carry ``sub`` and a non-empty ``idNummer``."""
    provider = oidc.Provider(
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        token_endpoint=idp.token_endpoint,
        jwks_uri=idp.jwks_uri,
        ca_file=idp.ca_file,
    )
    return oidc.RelyingParty(
        provider,
        http,
        requirement=REQUIREMENT,
        unavailable_code=UNAVAILABLE,
        required=("sub",),
        non_empty=("idNummer",),
        clock=clock,
    )


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
        self._redirect = default_redirect
        self.states = LoginStates(clock)
        self._parties = {idp.issuer: relying_party(idp, http, clock) for idp in idps}

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
        party = self._parties[idp.issuer]
        await party.endpoint("authorization_endpoint")  # no state for an IDP we cannot reach
        redirect = idp.redirect_uri or self._redirect
        state, login = self.states.issue(idp.issuer, redirect)
        return await party.authorization_url(
            redirect_uri=redirect,
            scope=SCOPE,
            state=state,
            nonce=login.nonce,
            verifier=login.verifier,
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
        return await self._parties[login.issuer].redeem(
            code, verifier=login.verifier, redirect_uri=login.redirect_uri, nonce=login.nonce
        )

    async def verify_id_token(self, idp: TrustedIdp, token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``token`` if it is a valid ID token of ``idp`` for us with ``nonce``."""
        return await self._parties[idp.issuer].verify_id_token(token, nonce)
