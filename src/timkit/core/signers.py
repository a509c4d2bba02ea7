"""Signing keys with their certificates: configured PEM files, or issued by the local PKI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk

from timkit.core import jwt
from timkit.core.config import StrictModel
from timkit.core.errors import ConfigError
from timkit.core.tls import CertificateRole, LocalPKI


class SignerConfig(StrictModel):
    """A signing certificate and its key (PEM). Empty paths: issued by the local PKI.

    Attributes:
        cert: certificate (chain, leaf first) whose key signs.
        key: the private key.
    """

    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class Signer:
    """A private signing key and its certificate chain (leaf first)."""

    key: jwk.JWK
    chain: tuple[x509.Certificate, ...]

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf certificate."""
        return self.chain[0]

    def x5c(self) -> list[str]:
        """The chain as a JOSE ``x5c`` header value."""
        return jwt.x5c_of(self.chain)


def load_signer(
    config: SignerConfig,
    pki_dir: Path,
    *,
    name: str,
    common_name: str,
    curve: ec.EllipticCurve,
    path: str,
    role: CertificateRole | None = None,
) -> Signer:
    """The signer configured in ``config``, or one issued by the local PKI in ``pki_dir``.

    Args:
        config: the configured certificate and key; both or neither must be set.
        pki_dir: local PKI used when neither is set.
        name: file stem of the issued certificate.
        common_name: CN of the issued certificate.
        curve: the key's curve for an issued certificate.
        path: config key path, named in errors.
        role: the gematik role an issued certificate carries (None: none); a configured
            certificate is used as it is.

    Raises:
        ConfigError: when only one of cert and key is set, or they cannot be read.
    """
    if (config.cert is None) != (config.key is None):
        raise ConfigError("set both cert and key, or neither", path=path)
    if config.cert is None or config.key is None:
        paths = LocalPKI(pki_dir).ensure_signing_cert(name, common_name, curve=curve, role=role)
        cert_file, key_file = paths.cert, paths.key
    else:
        cert_file, key_file = config.cert, config.key
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_file.read_bytes()))
        key = jwt.key_from_pem(key_file.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"cannot load signer: {e}", path=path) from e
    return Signer(key, chain)
