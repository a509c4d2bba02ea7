"""The ID token signing key: configured PEM files, or issued by the local PKI.

The key's curve fixes the algorithm (``ES256``: P-256, ``BP256R1``: brainpoolP256r1, see
:func:`timkit.core.jwt.alg_for`). Its ``kid`` is the RFC 7638 thumbprint; the JWKS publishes
the public key with ``use=sig``, ``alg`` and the certificate chain as ``x5c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk

from timkit.core import jwt
from timkit.core.errors import ConfigError
from timkit.core.signers import load_signer
from timkit.idp.config import IdpConfig

CURVES: dict[str, ec.EllipticCurve] = {"ES256": ec.SECP256R1(), "BP256R1": ec.BrainpoolP256R1()}


@dataclass(frozen=True)
class SigningKey:
    """A private signing key, its ``kid`` and its certificate chain (leaf first)."""

    key: jwk.JWK
    kid: str
    chain: tuple[x509.Certificate, ...]

    @property
    def alg(self) -> str:
        """The JWS algorithm this key signs with."""
        return jwt.alg_for(self.key)

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        """``claims`` as a compact JWS with ``kid``."""
        return jwt.sign(claims, self.key, typ=typ, kid=self.kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (one key)."""
        public: dict[str, Any] = self.key.export_public(as_dict=True)
        public.update(kid=self.kid, use="sig", alg=self.alg, x5c=jwt.x5c_of(self.chain))
        return {"keys": [public]}


def load_signing_key(config: IdpConfig) -> SigningKey:
    """The key configured in ``config.signer``, or one the local PKI issues for ``signing``.

    Loading (both or neither of cert and key, or a local PKI certificate on the curve of
    :data:`CURVES`) is :func:`timkit.core.signers.load_signer`; this adds the ``kid``.

    Raises:
        ConfigError: when only one of cert and key is set, they cannot be read, or the key's
            curve does not fit ``signing``.
    """
    signer = load_signer(
        config.signer,
        config.pki_dir,
        name=f"idp-signer-{config.signing.lower()}",
        common_name="IDP-Dienst stand-in ID_TOKEN signer",
        curve=CURVES[config.signing],
        path="signer",
    )
    try:
        alg = jwt.alg_for(signer.key)
    except TypeError as e:
        raise ConfigError(f"cannot load the signing key: {e}", path="signer") from e
    if alg != config.signing:
        raise ConfigError(f"the key signs {alg}, but signing is {config.signing}", path="signer")
    return SigningKey(signer.key, signer.key.thumbprint(), signer.chain)
