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

**ID token checks (ML-128758, fail closed)** are those of :mod:`timkit.core.oidc` (signature
by a key of the IDP's JWKS, ``alg``, ``iss``, ``aud``/``azp``, ``exp``, ``iat``, ``nonce`` =
the one we sent), plus non-empty ``idNummer`` and ``professionOID``. Endpoints not configured
come from the discovery document (cached :data:`~timkit.core.oidc.DISCOVERY_TTL` s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp

from timkit.core import oidc
from timkit.core.errors import Codes
from timkit.registration.config import IdpSettings
from timkit.registration.storage import flows

REQUIREMENT = "ML-128758"
UNAVAILABLE = Codes.UNAVAILABLE


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
        provider = oidc.Provider(
            issuer=settings.issuer,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            discovery=settings.discovery,
            authorization_endpoint=settings.authorization_endpoint,
            token_endpoint=settings.token_endpoint,
            jwks_uri=settings.jwks_uri,
            ca_file=settings.ca_file,
        )
        self._party = oidc.RelyingParty(
            provider,
            http,
            requirement=REQUIREMENT,
            unavailable_code=UNAVAILABLE,
            non_empty=("idNummer", "professionOID"),
            clock=clock,
        )

    @property
    def enabled(self) -> bool:
        """Whether an IDP is configured (Verfahren 1 available)."""
        return bool(self.settings.issuer)

    def new_flow(self, mode: str, lang: str) -> tuple[str, flows.OidcFlow]:
        """A fresh ``state`` with its PKCE verifier and nonce (to be stored by the caller)."""
        return oidc.new_state(), flows.OidcFlow(
            verifier=oidc.new_verifier(), nonce=oidc.new_nonce(), mode=mode, lang=lang
        )

    async def authorization_url(self, state: str, flow: flows.OidcFlow) -> str:
        """The IDP URL the actor's browser (or script) opens for ``state``.

        Raises:
            TimkitError: 503 when the authorization endpoint has to be discovered and
                cannot be.
        """
        return await self._party.authorization_url(
            redirect_uri=self.redirect_uri,
            scope=" ".join(self.settings.scopes),
            state=state,
            nonce=flow.nonce,
            verifier=flow.verifier,
        )

    async def redeem(self, code: str, flow: flows.OidcFlow) -> dict[str, Any]:
        """Redeem ``code`` with the flow's verifier; the verified ID token claims.

        Raises:
            TokenError: 401 when the IDP refuses the code or the ID token fails a check.
            TimkitError: 503 when the IDP cannot be reached.
        """
        return await self._party.redeem(
            code, verifier=flow.verifier, redirect_uri=self.redirect_uri, nonce=flow.nonce
        )

    async def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``token`` if it is a valid ID token of the IDP for us with ``nonce``."""
        return await self._party.verify_id_token(token, nonce)
