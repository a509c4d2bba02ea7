"""The local PKI: one CA per data directory and a certificate for every component host name.

Layout under ``<data_dir>/pki/``::

    ca.crt, ca.key                    the local CA (trusted by clients, tests and Synapse)
    certs/<name>.crt, certs/<name>.key    one server certificate per component host name

Certificates are created on first use and regenerated only when missing, expiring within
:data:`RENEW_BEFORE`, not issued by the current CA, missing a requested name, or (signing
certificates) not carrying exactly the requested :class:`CertificateRole`.

Roles: the PKI gives a signing certificate a gematik role only when asked for it, and only
the FHIR-Proxy's federation list signers ask for :data:`FEDERATION_LIST_SIGNER` (as the
VZD's C.FD.SIG carries it); TLS leaves, the RD's RegService-token signer and the IDP's signer
never carry it, so they cannot sign a federation list that verifies (ML-123677).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from timkit.core.certpath import (
    OID_FD_SIG,
    OID_POLICY_GEM_OR_CP,
    OID_VZD_TI,
    admission_roles,
    policy_oids,
)
from timkit.core.files import write_private

CA_LIFETIME = dt.timedelta(days=3650)
CERT_LIFETIME = dt.timedelta(days=397)
RENEW_BEFORE = dt.timedelta(days=30)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


SIGNATURE_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
"""keyUsage of an EC leaf that only signs (TLS server keys with ECDHE, JWS signers)."""


@dataclass(frozen=True)
class CertificateRole:
    """A gematik technical role a signing certificate carries.

    Attributes:
        profession_item: the role's name in the Admission extension.
        profession_oid: the role's OID (Admission professionOID).
        policies: certificate policy OIDs (the certificate type, e.g. C.FD.SIG).
    """

    profession_item: str
    profession_oid: str
    policies: tuple[str, ...]

    def extensions(self) -> list[tuple[x509.ExtensionType, bool]]:
        """The certificate policies and Admission extensions (non-critical) for this role."""
        info = x509.ProfessionInfo(
            naming_authority=None,
            profession_items=[self.profession_item],
            profession_oids=[x509.ObjectIdentifier(self.profession_oid)],
            registration_number=None,
            add_profession_info=None,
        )
        admission = x509.Admission(
            admission_authority=None, naming_authority=None, profession_infos=[info]
        )
        policies = [
            x509.PolicyInformation(x509.ObjectIdentifier(oid), None) for oid in self.policies
        ]
        return [
            (x509.CertificatePolicies(policies), False),
            (x509.Admissions(authority=None, admissions=[admission]), False),
        ]

    def carried_by(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` carries exactly this role and its policies."""
        return admission_roles(cert) == {self.profession_oid} and policy_oids(cert) == set(
            self.policies
        )


FEDERATION_LIST_SIGNER = CertificateRole(
    "Verzeichnisdienst-TI", OID_VZD_TI, (OID_POLICY_GEM_OR_CP, OID_FD_SIG)
)
"""The VZD-FHIR-Directory's federation list signer: C.FD.SIG with role ``oid_vzd_ti``."""


def _without_role(cert: x509.Certificate) -> bool:
    return not admission_roles(cert) and not policy_oids(cert)


@dataclass(frozen=True)
class CertPaths:
    """Where a certificate and its private key live (PEM)."""

    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san_entry(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = set(ext.get_values_for_type(x509.DNSName))
    names.update(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))
    return names


def _expiring(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _now() < RENEW_BEFORE


class LocalPKI:
    """A certificate authority rooted in ``<pki_dir>`` that issues server certificates.

    Args:
        pki_dir: directory holding ``ca.crt``/``ca.key`` and ``certs/``.
        ca_name: common name of the CA certificate.
    """

    def __init__(self, pki_dir: Path, ca_name: str = "timkit local CA") -> None:
        self.dir = pki_dir
        self.ca_name = ca_name
        self.ca_cert_path = pki_dir / "ca.crt"
        self.ca_key_path = pki_dir / "ca.key"

    def ensure_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Load the CA, creating it when missing or expiring.

        Returns:
            The CA certificate and its private key.
        """
        if self.ca_cert_path.exists() and self.ca_key_path.exists():
            cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), None)
            if isinstance(key, ec.EllipticCurvePrivateKey) and not _expiring(cert):
                return cert, key
        return self._create_ca()

    def _create_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.ca_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        write_private(self.ca_key_path, _key_pem(key))
        _write_public(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    def ensure_server_cert(self, name: str, hostnames: list[str]) -> CertPaths:
        """Return a server certificate for ``hostnames``, issuing a new one only when needed.

        Args:
            name: file stem under ``certs/`` (usually the component's primary host name).
            hostnames: DNS names or IP literals the certificate must cover.

        Returns:
            Paths of the PEM certificate and key.
        """
        ca_cert, ca_key = self.ensure_ca()
        paths = CertPaths(self.dir / "certs" / f"{name}.crt", self.dir / "certs" / f"{name}.key")
        if paths.cert.exists() and paths.key.exists():
            cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
            if (
                not _expiring(cert)
                and cert.issuer == ca_cert.subject
                and set(hostnames) <= _sans(cert)
                and self._signed_by(cert, ca_cert)
            ):
                return paths
        self._issue(paths, hostnames, ca_cert, ca_key)
        return paths

    @staticmethod
    def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def _issue(
        self,
        paths: CertPaths,
        hostnames: list[str],
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
    ) -> None:
        usage = x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        _issue_leaf(
            paths,
            hostnames[0],
            ec.SECP256R1(),
            [
                (x509.SubjectAlternativeName([_san_entry(h) for h in hostnames]), False),
                (usage, False),
            ],
            ca_cert,
            ca_key,
        )

    def ensure_signing_cert(
        self,
        name: str,
        common_name: str,
        *,
        curve: ec.EllipticCurve | None = None,
        role: CertificateRole | None = None,
    ) -> CertPaths:
        """Return a component signing certificate (keyUsage digitalSignature, no host names).

        Used for JWS signers such as the federation list signer (gematik's C.FD.SIG role).
        Issued only when missing, expiring, from another CA, on another curve or with another
        role than ``role`` (so a data directory from before roles gets its list signers
        re-issued with the role on the next start).

        Args:
            name: file stem under ``certs/``.
            common_name: the certificate subject's CN.
            curve: the key's curve; default P-256 (``brainpoolP256r1`` for gematik's BP256R1).
            role: the gematik role to carry (:data:`FEDERATION_LIST_SIGNER`); None: no role.
        """
        curve = curve or ec.SECP256R1()
        ca_cert, ca_key = self.ensure_ca()
        paths = CertPaths(self.dir / "certs" / f"{name}.crt", self.dir / "certs" / f"{name}.key")
        if paths.cert.exists() and paths.key.exists():
            cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
            public = cert.public_key()
            if (
                not _expiring(cert)
                and isinstance(public, ec.EllipticCurvePublicKey)
                and public.curve.name == curve.name
                and (role.carried_by(cert) if role else _without_role(cert))
                and self._signed_by(cert, ca_cert)
            ):
                return paths
        extensions: list[tuple[x509.ExtensionType, bool]] = [(SIGNATURE_ONLY, True)]
        if role is not None:
            extensions.extend(role.extensions())
        _issue_leaf(paths, common_name, curve, extensions, ca_cert, ca_key)
        return paths


def _issue_leaf(
    paths: CertPaths,
    common_name: str,
    curve: ec.EllipticCurve,
    extensions: list[tuple[x509.ExtensionType, bool]],
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> None:
    """Issue an end-entity certificate for a new key on ``curve``; write both to ``paths``.

    Every leaf gets ``BasicConstraints(ca=False)`` and the CA's key identifier, plus
    ``extensions`` as ``(extension, critical)`` pairs.
    """
    key = ec.generate_private_key(curve)
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_private(paths.key, _key_pem(key))
    _write_public(paths.cert, cert.public_bytes(serialization.Encoding.PEM))


def client_ssl_context(ca_cert: Path) -> ssl.SSLContext:
    """An SSL context for clients that trusts exactly the local CA (hostname checks on)."""
    return ssl.create_default_context(cafile=str(ca_cert))


def server_ssl_context(paths: CertPaths) -> ssl.SSLContext:
    """An SSL context for a TLS server presenting ``paths`` (TLS 1.2 or newer)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(paths.cert), str(paths.key))
    return ctx


def optional_server_ssl_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """:func:`server_ssl_context` for ``cert`` and ``key``; None (plain HTTP) unless both
    are set."""
    if cert is None or key is None:
        return None
    return server_ssl_context(CertPaths(cert, key))
