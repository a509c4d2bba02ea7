"""The tokens the token endpoint hands out: the ID_TOKEN with gematik's claims, and an
access token.

ID_TOKEN claims (gemSpec_IDP_Dienst, as in api-ti-messenger ``docs/IDP/idp.adoc``):

* OpenID Connect: ``iss``, ``sub``, ``aud`` (= ``azp`` = the client id), ``iat``, ``exp``,
  ``auth_time``, ``nonce`` (when the request had one), ``jti``, ``at_hash``, ``scope``;
* assurance: ``acr`` ``gematik-ehealth-loa-high``, ``amr`` ``["mfa", "sc", "pin"]``;
* the card: ``idNummer`` (TelematikID), ``professionOID``, ``organizationName``,
  ``given_name``/``family_name`` (HBA), ``display_name``;
* ``kim``: the card's KIM address, when it has one. The real IDP-Dienst has no such claim;
  relying parties of the local run may use it, production ones look KIM addresses up in
  the directory.

``sub`` is stable per card and issuer: the base64url SHA-256 of issuer and TelematikID.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

from timkit.core import jwt
from timkit.idp.cards import Card
from timkit.idp.grants import Grant
from timkit.idp.keys import SigningKey

ACR = "gematik-ehealth-loa-high"
AMR = ("mfa", "sc", "pin")


def subject(issuer: str, telematik_id: str) -> str:
    """The ``sub`` of the card with ``telematik_id`` at ``issuer``."""
    return jwt.b64url(hashlib.sha256(f"{issuer}\n{telematik_id}".encode()).digest())


def at_hash(access_token: str) -> str:
    """OIDC ``at_hash``: left half of the SHA-256 of the access token (ES256, BP256R1)."""
    return jwt.b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def card_claims(card: Card) -> dict[str, Any]:
    """The claims that describe ``card`` (idNummer, professionOID, names, ...)."""
    claims: dict[str, Any] = {
        "idNummer": card.telematikID,
        "professionOID": card.professionOID,
        "display_name": card.holder,
    }
    if card.organizationName:
        claims["organizationName"] = card.organizationName
    if card.type == "HBA":
        claims["given_name"] = card.given_name
        claims["family_name"] = card.family_name
    if card.kim:
        claims["kim"] = card.kim
    return claims


class TokenIssuer:
    """Signs the token endpoint's answer for a redeemed grant.

    Args:
        key: the signing key.
        issuer: the ``iss`` of every token.
        lifetime: seconds the tokens are valid.
        clock: epoch seconds.
    """

    def __init__(
        self, key: SigningKey, issuer: str, lifetime: int, clock: Callable[[], float]
    ) -> None:
        self._key = key
        self._issuer = issuer
        self._lifetime = lifetime
        self._clock = clock

    def issue(self, grant: Grant, card: Card) -> dict[str, Any]:
        """The token response for ``grant`` (``card`` is the card it names).

        Returns:
            ``{access_token, id_token, token_type, expires_in, scope}`` (RFC 6749 §5.1).
        """
        now = int(self._clock())
        request = grant.request
        sub = subject(self._issuer, card.telematikID)
        scope = " ".join(request.scope)
        access_token = self._key.sign(
            {
                "iss": self._issuer,
                "sub": sub,
                "aud": self._issuer,
                "client_id": request.client_id,
                "scope": scope,
                "iat": now,
                "exp": now + self._lifetime,
                "jti": secrets.token_urlsafe(16),
                "idNummer": card.telematikID,
            },
            typ="at+jwt",
        )
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": sub,
            "aud": request.client_id,
            "azp": request.client_id,
            "iat": now,
            "exp": now + self._lifetime,
            "auth_time": grant.auth_time,
            "acr": ACR,
            "amr": list(AMR),
            "jti": secrets.token_urlsafe(16),
            "at_hash": at_hash(access_token),
            "scope": scope,
            **card_claims(card),
        }
        if request.nonce is not None:
            claims["nonce"] = request.nonce
        return {
            "access_token": access_token,
            "id_token": self._key.sign(claims),
            "token_type": "Bearer",
            "expires_in": self._lifetime,
            "scope": scope,
        }
