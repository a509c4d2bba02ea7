"""X.509 path validation for JWS signers that send their chain in ``x5c`` (RFC 5280 §6 essentials).

cryptography's ``x509.verification`` covers only the web PKI's profile (no brainpool curves,
no gematik roles), so the essentials are checked here, in one place. The path is
``x5c[0]`` (the signer), ``x5c[1]`` … ``x5c[n-1]`` and the trust anchor that closes it (the
last certificate is an anchor itself or is issued by one). :func:`validate_path` accepts it
only if every rule holds:

1. length: at most :data:`MAX_CHAIN` certificates in ``x5c``;
2. validity: every certificate of the path, the anchor included, is valid at ``now``;
3. algorithms: every key of the path is an EC key on one of :data:`CURVES` (P-256, P-384,
   brainpoolP256r1/384r1/512r1) and every certificate below the anchor is signed with ECDSA
   over SHA-256/384/512 (:data:`SIGNATURE_ALGORITHMS`): no RSA, SHA-1, Ed25519 or DSA;
4. linkage: each certificate is issued by the next one (issuer name equals the subject name
   and the signature verifies), the last one by an anchor (or it is an anchor);
5. issuers (every certificate that issued another one of the path, the anchor included):
   basicConstraints present with ``cA=TRUE``; keyUsage present with ``keyCertSign``;
   a ``pathLenConstraint``, when set, at least the number of CA certificates between the
   issuer and the signer;
6. the signer: basicConstraints absent or ``cA=FALSE`` (an end entity); keyUsage present
   with ``digitalSignature``;
7. no certificate of the path carries a critical extension that is not processed here
   (:data:`PROCESSED_CRITICAL`).

Which signer may sign what (its role) is the caller's rule; :func:`admission_roles` and
:func:`policy_oids` read the two places gematik puts it: the ``Admission`` extension's
professionOIDs (the technical role, e.g. ``oid_vzd_ti``) and the certificate policies (the
certificate type, e.g. ``oid_fd_sig`` for ``C.FD.SIG``).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

MAX_CHAIN = 5
"""Most certificates accepted in an ``x5c`` header."""

CURVES = frozenset(
    {"secp256r1", "secp384r1", "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1"}
)
"""EC curves a key of the path may use (cryptography's curve names)."""

SIGNATURE_ALGORITHMS = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)
"""Signature algorithms a certificate of the path may be signed with."""

ADMISSION = x509.ObjectIdentifier("1.3.36.8.3.3")
"""The Common PKI ``Admission`` extension carrying gematik's technical roles."""

PROCESSED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ADMISSION,
    }
)
"""Critical extensions this module understands; any other critical one fails rule 7."""

OID_FD_SIG = "1.2.276.0.76.4.203"
"""Certificate policy of gematik's ``C.FD.SIG`` (a Fachdienst's signing certificate)."""
OID_POLICY_GEM_OR_CP = "1.2.276.0.76.4.163"
"""gematik's certificate policy for the TI's component certificates."""
OID_VZD_TI = "1.2.276.0.76.4.171"
"""Technical role ``oid_vzd_ti`` ("Verzeichnisdienst-TI"): the VZD's federation list signer."""


class PathError(ValueError):
    """A certificate path that breaks one of the rules of the module docstring."""


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_validity(cert: x509.Certificate, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise PathError(f"certificate {_name(cert)} is not valid yet")
    if now > cert.not_valid_after_utc:
        raise PathError(f"certificate {_name(cert)} expired")


def _check_key(cert: x509.Certificate) -> None:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in CURVES:
        raise PathError(
            f"certificate {_name(cert)} has a key that is not EC on {', '.join(sorted(CURVES))}"
        )


def _check_signature_algorithm(cert: x509.Certificate) -> None:
    if cert.signature_algorithm_oid not in SIGNATURE_ALGORITHMS:
        raise PathError(
            f"certificate {_name(cert)} is signed with "
            f"{cert.signature_algorithm_oid.dotted_string}, not ECDSA with SHA-256/384/512"
        )


def _check_critical(cert: x509.Certificate) -> None:
    for extension in cert.extensions:
        if extension.critical and extension.oid not in PROCESSED_CRITICAL:
            raise PathError(
                f"certificate {_name(cert)} has the unprocessed critical extension "
                f"{extension.oid.dotted_string}"
            )


def _check_issuer(issuer: x509.Certificate, below: int) -> None:
    """Rule 5 for ``issuer``, which has ``below`` CA certificates between it and the signer."""
    constraints = _extension(issuer, x509.BasicConstraints)
    if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
        raise PathError(f"certificate {_name(issuer)} issued another but is not a CA (cA=FALSE)")
    usage = _extension(issuer, x509.KeyUsage)
    if not isinstance(usage, x509.KeyUsage) or not usage.key_cert_sign:
        raise PathError(f"certificate {_name(issuer)} issued another without keyUsage keyCertSign")
    if constraints.path_length is not None and below > constraints.path_length:
        raise PathError(
            f"certificate {_name(issuer)} allows {constraints.path_length} CA certificates "
            f"below it (pathLenConstraint), the path has {below}"
        )


def _check_signer(signer: x509.Certificate) -> None:
    constraints = _extension(signer, x509.BasicConstraints)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise PathError(f"the signer {_name(signer)} is a CA certificate, not an end entity")
    usage = _extension(signer, x509.KeyUsage)
    if not isinstance(usage, x509.KeyUsage) or not usage.digital_signature:
        raise PathError(f"the signer {_name(signer)} has no keyUsage digitalSignature")


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    with contextlib.suppress(ValueError, TypeError, InvalidSignature):
        child.verify_directly_issued_by(parent)
        return True
    return False


def _close(top: x509.Certificate, anchors: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The anchor that is ``top`` or issued it, or None."""
    for anchor in anchors:
        if top == anchor:
            return anchor
    for anchor in anchors:
        if anchor.subject == top.issuer and _issued_by(top, anchor):
            return anchor
    return None


def validate_path(
    chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], now: datetime
) -> list[x509.Certificate]:
    """Check the rules of the module docstring for ``chain`` (signer first).

    Args:
        chain: the ``x5c`` certificates, signer first.
        anchors: the trusted anchors (none: every path fails).
        now: the time of the check (timezone-aware).

    Returns:
        The full path, signer first, ending with the anchor.

    Raises:
        PathError: naming the certificate and the rule that failed.
    """
    if not anchors:
        raise PathError("no trust anchors configured")
    if not chain:
        raise PathError("the x5c chain is empty")
    if len(chain) > MAX_CHAIN:
        raise PathError(f"the x5c chain has {len(chain)} certificates, at most {MAX_CHAIN}")
    for child, parent in itertools.pairwise(chain):
        if child.issuer != parent.subject or not _issued_by(child, parent):
            raise PathError(f"certificate {_name(child)} is not issued by {_name(parent)}")
    anchor = _close(chain[-1], anchors)
    if anchor is None:
        raise PathError("the chain leads to no trusted anchor")
    path = list(chain) if chain[-1] == anchor else [*chain, anchor]
    for index, cert in enumerate(path):
        _check_validity(cert, now)
        _check_key(cert)
        _check_critical(cert)
        if index < len(path) - 1:  # the anchor is trusted as configured, not by its signature
            _check_signature_algorithm(cert)
        if index == 0:
            _check_signer(cert)
        else:
            _check_issuer(cert, below=index - 1)
    return path


def admission_roles(cert: x509.Certificate) -> frozenset[str]:
    """The professionOIDs of ``cert``'s ``Admission`` extension (gematik's technical roles)."""
    admissions = _extension(cert, x509.Admissions)
    if not isinstance(admissions, x509.Admissions):
        return frozenset()
    return frozenset(
        oid.dotted_string
        for admission in admissions
        for info in admission.profession_infos
        for oid in info.profession_oids or ()
    )


def policy_oids(cert: x509.Certificate) -> frozenset[str]:
    """The certificate policy OIDs of ``cert`` (gematik's certificate types)."""
    policies = _extension(cert, x509.CertificatePolicies)
    if not isinstance(policies, x509.CertificatePolicies):
        return frozenset()
    return frozenset(p.policy_identifier.dotted_string for p in policies)
