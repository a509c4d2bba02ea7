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
from timkit.core.tls import LocalPKI
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

    Raises:
        ConfigError: when only one of cert and key is set, they cannot be read, or the key's
            curve does not fit ``signing``.
    """
    signer = config.signer
    if (signer.cert is None) != (signer.key is None):
        raise ConfigError("set both cert and key, or neither", path="signer")
    if signer.cert is None or signer.key is None:
        paths = LocalPKI(config.pki_dir).ensure_signing_cert(
            f"idp-signer-{config.signing.lower()}",
            "IDP-Dienst stand-in ID_TOKEN signer",
            curve=CURVES[config.signing],
        )
        cert_file, key_file = paths.cert, paths.key
    else:
        cert_file, key_file = signer.cert, signer.key
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_file.read_bytes()))
        key = jwt.key_from_pem(key_file.read_bytes())
        alg = jwt.alg_for(key)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"cannot load the signing key: {e}", path="signer") from e
    if alg != config.signing:
        raise ConfigError(f"the key signs {alg}, but signing is {config.signing}", path="signer")
    return SigningKey(key, key.thumbprint(), chain)
