"""Federation lists signed the way the attacks of issue 14 (finding 2) sign them.

:func:`issue` makes any certificate (CA or not, any keyUsage, role, validity, hash, key);
:func:`forgeries` builds every forged list of the finding against a real local PKI
(:class:`timkit.core.tls.LocalPKI`), whose CA is the verifier's trust anchor:

* ``tls-leaf-as-ca``: a fresh key with the list signer role, its certificate issued by an
  ordinary TLS leaf (CA:FALSE) of the local PKI, ``x5c = [that cert, the leaf]``;
* ``regservice-token-signer``: signed with the RD's RegService-OpenID-Token key, issued by
  ``runtime.plan.rd_token_signer`` exactly as ``timkit up`` issues it;
* ``tls-leaf-key``: signed directly with a TLS leaf's key;
* ``issuer-without-keycertsign``, ``path-length-exceeded``, ``expired-issuer``: an
  intermediate CA under the local CA that breaks one rule each;
* ``signer-without-digitalsignature``, ``signer-without-role``, ``signer-other-role``,
  ``signer-without-fd-sig-policy``, ``signer-is-a-ca``: a signer issued by the local CA that
  breaks one rule each;
* ``sha224-signature``, ``ed25519-issuer``: certificates with algorithms outside the rule.

Every forged list names ``evil.tim.test``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from timkit.core import jwt
from timkit.core.certpath import OID_FD_SIG, OID_POLICY_GEM_OR_CP
from timkit.core.tls import FEDERATION_LIST_SIGNER, CertificateRole, CertPaths, LocalPKI
from timkit.runtime.plan import rd_token_signer

EVIL = "evil.tim.test"
CN = "VZD-FHIR-FList-Signer"
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
NOW = dt.datetime.now(dt.UTC)
OTHER_ROLE = CertificateRole(
    "TI-Messenger", "1.2.276.0.76.4.999", (OID_POLICY_GEM_OR_CP, OID_FD_SIG)
)
"""A C.FD.SIG with a role that is not the list signer's (as the RD's token signer could be)."""
NO_FD_SIG = CertificateRole(
    "Verzeichnisdienst-TI", FEDERATION_LIST_SIGNER.profession_oid, (OID_POLICY_GEM_OR_CP,)
)
"""The list signer's role in the Admission extension, but no C.FD.SIG policy."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey


def _usage(*, sign: bool = False, cert_sign: bool = False, agree: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=agree,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


SIGN = _usage(sign=True)
CA_USAGE = _usage(cert_sign=True)


def issue(
    common_name: str,
    issuer: Issued | None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    usage: x509.KeyUsage | None = None,
    role: CertificateRole | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    algorithm: hashes.SHA224 | hashes.SHA256 | hashes.SHA3_256 | None = None,
    key: PrivateKey | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """A certificate for a new key (or ``key``) issued by ``issuer`` (None: self-signed).

    ``usage`` defaults to keyCertSign for a CA and digitalSignature otherwise.
    """
    key = key or ec.generate_private_key(ec.BrainpoolP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(usage or (CA_USAGE if ca else SIGN), critical=True)
    )
    for extension, critical in [*(role.extensions() if role else []), *extra]:
        builder = builder.add_extension(extension, critical=critical)
    if isinstance(signing_key, ed25519.Ed25519PrivateKey):
        cert = builder.sign(signing_key, None)
    else:
        cert = builder.sign(signing_key, algorithm or hashes.SHA256())
    return Issued(cert, key)


def local_ca(pki: LocalPKI) -> Issued:
    """The local PKI's CA (the trust anchor) with its key."""
    cert, key = pki.ensure_ca()
    return Issued(cert, key)


def load(paths: CertPaths) -> Issued:
    """A certificate and key the local PKI wrote."""
    key = serialization.load_pem_private_key(paths.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Issued(x509.load_pem_x509_certificate(paths.cert.read_bytes()), key)


def list_signer(pki: LocalPKI) -> Issued:
    """The genuine list signer, issued by the local PKI as the FHIR-Proxy's is."""
    return load(
        pki.ensure_signing_cert(
            "flist",
            "VZD-FHIR-FList-Signer",
            curve=ec.BrainpoolP256R1(),
            role=FEDERATION_LIST_SIGNER,
        )
    )


def sign_list(
    signer: Issued,
    x5c: Sequence[x509.Certificate],
    version: int = 10**6,
    domains: Sequence[str] = (EVIL,),
) -> bytes:
    """A compact JWS federation list over ``domains`` signed with ``signer``'s key."""
    assert isinstance(signer.key, ec.EllipticCurvePrivateKey)
    payload = {"version": version, "domainList": [{"domain": d} for d in domains]}
    pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.sign(
        orjson.dumps(payload), jwt.key_from_pem(pem), typ="JWT", x5c=jwt.x5c_of(x5c)
    ).encode()


@dataclass(frozen=True)
class Forgery:
    """A forged list and the JWS algorithm a verifier must be configured with to get past
    the algorithm check (so that the rule under test is what refuses it)."""

    jws: bytes
    sig_alg: str
    rule: str


def forgeries(pki: LocalPKI, version: int = 10**6) -> dict[str, Forgery]:
    """Every forged list of finding 2 against ``pki`` (see the module docstring)."""
    anchor = local_ca(pki)
    tls_leaf = load(pki.ensure_server_cert("rd-tls", ["127.0.0.1", "localhost"]))
    regservice = load(rd_token_signer(pki))  # exactly as `timkit up` issues it
    role = FEDERATION_LIST_SIGNER
    out: dict[str, Forgery] = {}

    def add(name: str, signer: Issued, chain: Sequence[x509.Certificate], rule: str) -> None:
        key = signer.key
        alg = (
            "ES256"
            if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == ("secp256r1")
            else "BP256R1"
        )
        out[name] = Forgery(sign_list(signer, chain, version), alg, rule)

    under_leaf = issue(CN, tls_leaf, role=role)
    add("tls-leaf-as-ca", under_leaf, [under_leaf.cert, tls_leaf.cert], "is not a CA")
    add("regservice-token-signer", regservice, [regservice.cert], "no C.FD.SIG")
    add("tls-leaf-key", tls_leaf, [tls_leaf.cert], "digitalSignature")

    no_cert_sign = issue("Sub-CA without keyCertSign", anchor, ca=True, usage=SIGN)
    signer = issue(CN, no_cert_sign, role=role)
    add("issuer-without-keycertsign", signer, [signer.cert, no_cert_sign.cert], "keyCertSign")

    # the local CA allows no CA certificate below it (pathLenConstraint 0)
    sub_ca = issue("Sub-CA", anchor, ca=True)
    signer = issue(CN, sub_ca, role=role)
    add("path-length-exceeded", signer, [signer.cert, sub_ca.cert], "pathLenConstraint")

    expired_ca = issue(
        "Expired Sub-CA",
        anchor,
        ca=True,
        not_before=NOW - dt.timedelta(days=60),
        not_after=NOW - dt.timedelta(days=1),
    )
    signer = issue(CN, expired_ca, role=role)
    add("expired-issuer", signer, [signer.cert, expired_ca.cert], "expired")

    signers = {
        "signer-without-digitalsignature": (
            issue(CN, anchor, usage=_usage(agree=True), role=role),
            "digitalSignature",
        ),
        "signer-without-role": (issue(CN, anchor), "no C.FD.SIG"),
        "signer-other-role": (
            issue(CN, anchor, role=OTHER_ROLE),
            "lacks the federation list signer role",
        ),
        "signer-without-fd-sig-policy": (issue(CN, anchor, role=NO_FD_SIG), "no C.FD.SIG"),
        "signer-is-a-ca": (issue(CN, anchor, ca=True, role=role), "is a CA certificate"),
        "sha224-signature": (
            issue(CN, anchor, algorithm=hashes.SHA224(), role=role),
            "not ECDSA with SHA-256",
        ),
    }
    for name, (signer, rule) in signers.items():
        add(name, signer, [signer.cert], rule)

    ed_ca = issue("Ed25519 Sub-CA", anchor, ca=True, key=ed25519.Ed25519PrivateKey.generate())
    signer = issue(CN, ed_ca, role=role)
    add("ed25519-issuer", signer, [signer.cert, ed_ca.cert], "not EC")
    return out
