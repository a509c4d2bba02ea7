"""I_requestToken: RegService-OpenID-Tokens for the logged-in Org-Admin (seed 002 §3.6).

:func:`issue` makes the answer of ``POST /api/v1/token`` (:mod:`timkit.registration.api.token`):
``{"token", "token_type": "RegService-OpenID-Token", "expires_in"}``. The token is a JWT the
VZD-FHIR-Directory's ``/owner-authenticate`` exchanges for an owner-accesstoken::

    header  {"alg": "BP256R1" | "ES256", "typ": "JWT", "x5c": [<RD signing certificate>, …]}
    payload {"sub": "<account id>", "iss": "<RD public base URL>",
             "aud": "<directory.owner_authenticate_url>", "professionOID", "idNummer":
             "<TelematikID>", "iat", "exp": iat + request_token.lifetime}

The signing key and certificate come from ``token_signer`` (C.FD.SIG with role ``oid_tim`` in
production) or are issued by the local PKI (brainpoolP256r1 for ``BP256R1``, P-256 for
``ES256``). The certificate must be registered for the provider at the directory
(``timkit directory provider cert``), and the organisation must hold a domain the provider
registered, else ``/owner-authenticate`` refuses the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core import jwt
from timkit.core.errors import ConfigError
from timkit.core.signers import Signer, load_signer
from timkit.registration.auth import Admin
from timkit.registration.config import RegistrationConfig

TOKEN_TYPE = "RegService-OpenID-Token"  # noqa: S105 - a token type name, not a secret


def load_token_signer(config: RegistrationConfig) -> Signer:
    """The configured signer, or one issued by the local PKI on the curve ``alg`` needs."""
    bp = config.request_token.alg == "BP256R1"
    signer = load_signer(
        config.token_signer,
        config.pki_dir,
        name="registration-token-signer-" + ("bp256r1" if bp else "es256"),
        common_name="TI-M Registrierungs-Dienst RegService-Token-Signer",
        curve=ec.BrainpoolP256R1() if bp else ec.SECP256R1(),
        path="token_signer",
    )
    if jwt.alg_for(signer.key) != config.request_token.alg:
        raise ConfigError(
            f"the key does not fit request_token.alg {config.request_token.alg}",
            path="token_signer",
        )
    return signer


def issue(
    config: RegistrationConfig,
    signer: Signer,
    admin: Admin,
    *,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """A RegService-OpenID-Token for ``admin``: ``{token, token_type, expires_in}``."""
    now = int(clock())
    lifetime = config.request_token.lifetime
    claims = {
        "sub": str(admin.account_id),
        "iss": config.public_base(),
        "aud": config.directory.owner_authenticate(),
        "professionOID": admin.profession_oid,
        "idNummer": admin.telematik_id,
        "iat": now,
        "exp": now + lifetime,
    }
    token = jwt.sign(claims, signer.key, typ="JWT", x5c=signer.x5c())
    return {"token": token, "token_type": TOKEN_TYPE, "expires_in": lifetime}
