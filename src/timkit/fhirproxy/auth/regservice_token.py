"""Checking RegService-OpenID-Tokens for ``/owner-authenticate`` (ML-123873).

A provider's Registrierungs-Dienst issues these JWTs to a TI-M user in the role Org-Admin
(seed 002 §3.6; HOWTO Authenticate §2.3.1)::

    header  {"alg": "BP256R1" | "ES256", "typ": "JWT", "x5c": ["<signing certificate>", …]}
    payload {"sub", "iss", "aud": "<base>/owner-authenticate", "professionOID",
             "idNummer": "<TelematikID>", "iat", "exp"}

Checks, all fail closed, in this order:

1. ``x5c`` present and well-formed; its leaf is a certificate a provider registered
   (``timkit directory provider add …``, exact match by SHA-256 fingerprint) and is within
   its validity period;
2. the signature verifies with that certificate's key, with ``alg`` ES256 or BP256R1
   matching the key's curve (no ``none``, no HMAC, no curve confusion);
3. ``aud`` is this proxy's ``/owner-authenticate`` URL, ``exp``/``iat``/``nbf`` hold, and
   ``sub``, ``iss``, ``professionOID``, ``idNummer`` are non-empty strings;
4. ``idNummer`` is the TelematikID of a domain that same provider registered (else 403).

1 to 3 failing → 401; 4 failing → 403; each names the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from timkit.core import jwt
from timkit.core.errors import TimkitError
from timkit.fhirproxy.storage.providers import Provider

REQUIREMENT = "ML-123873"
ALGS = ("ES256", "BP256R1")
STRING_CLAIMS = ("sub", "iss", "professionOID", "idNummer")


@dataclass(frozen=True)
class OwnerIdentity:
    """Who a valid RegService-OpenID-Token speaks for.

    Attributes:
        telematik_id: the organisation's TelematikID (``idNummer``).
        profession_oid: its ``professionOID``.
        provider: client id of the provider whose Registrierungs-Dienst signed the token.
        claims: all verified claims.
    """

    telematik_id: str
    profession_oid: str
    provider: str
    claims: dict[str, Any]


def verify_regservice_token(
    token: str,
    audience: str,
    provider_of: Callable[[x509.Certificate], Provider | None],
    owns: Callable[[str, str], bool],
) -> OwnerIdentity:
    """Check ``token`` (see the module docstring); blocking (database look-ups).

    Args:
        token: the compact JWT.
        audience: this proxy's ``/owner-authenticate`` URL.
        provider_of: the provider that registered a certificate, or None.
        owns: whether provider ``client_id`` registered a domain for a TelematikID.

    Raises:
        TokenError: 401 naming the failed check; 403 when the TelematikID is not one of
            the signing provider's.
    """
    try:
        return _verify(token, audience, provider_of, owns)
    except jwt.TokenError as e:
        if e.requirement:
            raise
        raise jwt.TokenError(
            f"RegService-OpenID-Token: {e.message}", requirement=REQUIREMENT, status=e.status
        ) from e


def _verify(
    token: str,
    audience: str,
    provider_of: Callable[[x509.Certificate], Provider | None],
    owns: Callable[[str, str], bool],
) -> OwnerIdentity:
    header = jwt.header_of(token)
    leaf = jwt.certificates_of(header)[0]
    provider = provider_of(leaf)
    if provider is None:
        raise jwt.TokenError("the x5c signing certificate is not registered for any provider")
    now = dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise jwt.TokenError("the x5c signing certificate is not valid now")
    try:
        key = jwt.key_from_certificate(leaf)
    except (ValueError, TypeError) as e:
        raise jwt.TokenError(f"the x5c certificate key cannot be used: {e}") from e
    claims = jwt.verify(
        token,
        key,
        algs=ALGS,
        issuer=None,
        audience=audience,
        required=("sub", "iss", "aud", "professionOID", "idNummer", "iat", "exp"),
    )
    for name in STRING_CLAIMS:
        value = claims[name]
        if not isinstance(value, str) or not value.strip():
            raise jwt.TokenError(f"claim {name!r} must be a non-empty string")
    telematik_id: str = claims["idNummer"]
    if not owns(provider.client_id, telematik_id):
        raise TimkitError(
            403,
            "access_denied",
            f"TelematikID {telematik_id!r} does not belong to a domain of provider"
            f" {provider.client_id!r}, whose certificate signed the token",
            requirement=REQUIREMENT,
        )
    return OwnerIdentity(telematik_id, claims["professionOID"], provider.client_id, claims)
