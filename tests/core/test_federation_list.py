"""The federation list reader and verifier shared by the FHIR-Proxy, the RD and the proxy.

Signed lists are made like the VZD-FHIR-Directory makes them: a BP256R1 signing certificate
of a local PKI carrying the list signer's role, its chain in ``x5c``; the PKI's CA is the
trust anchor. The forgeries of issue 14 (finding 2) come from :mod:`tests.support.forged_lists`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.forged_lists import (
    EVIL,
    Issued,
    forgeries,
    issue,
    list_signer,
    local_ca,
    sign_list,
)
from timkit.core import jwt
from timkit.core.federation_list import (
    INVALID,
    LIST_SIGNER_ROLE,
    REQUIREMENT,
    FederationList,
    FederationListError,
    ListEntry,
    ListVerificationError,
    check_chain,
    check_signer_role,
    load_anchors,
    parse_federation_list,
    verify_list,
)
from timkit.core.tls import FEDERATION_LIST_SIGNER, SIGNATURE_ONLY, LocalPKI

NOW = dt.datetime.now(dt.UTC)
VZD_SIGNER = Path(__file__).parents[1] / "data" / "vzd" / "certificates" / "vzd-flist-signer.der"
"""The VZD's real list signer certificate (see the README beside it)."""
PAYLOAD = {"version": 7, "domainList": [{"domain": "praxis.example.de"}]}


def _pki(tmp_path: Path, name: str = "pki") -> LocalPKI:
    pki = LocalPKI(tmp_path / name, ca_name=f"{name} CA")
    pki.ensure_ca()
    return pki


def _signer(pki: LocalPKI) -> tuple[list[x509.Certificate], bytes]:
    """The BP256R1 list signer's chain (leaf only) and private key PEM."""
    paths = pki.ensure_signing_cert(
        "flist", "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1(), role=FEDERATION_LIST_SIGNER
    )
    return x509.load_pem_x509_certificates(paths.cert.read_bytes()), paths.key.read_bytes()


def _sign(chain: list[x509.Certificate], key_pem: bytes, payload: object = PAYLOAD) -> bytes:
    return jwt.sign(
        orjson.dumps(payload), jwt.key_from_pem(key_pem), x5c=jwt.x5c_of(chain)
    ).encode()


def _anchor(pki: LocalPKI) -> x509.Certificate:
    return pki.ensure_ca()[0]


def _expired_signer(pki: LocalPKI) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A BP256R1 leaf issued by ``pki``'s CA whose validity ended yesterday."""
    ca_cert, ca_key = pki.ensure_ca()
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired signer")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW - dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(SIGNATURE_ONLY, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


# -- membership --------------------------------------------------------------------------------


def test_contains_is_case_insensitive() -> None:
    flist = FederationList(1, (ListEntry("Praxis.Example.DE"), ListEntry("b.example.de")))
    assert flist.contains("praxis.example.de")
    assert flist.contains("PRAXIS.example.de")
    assert flist.contains("B.EXAMPLE.DE")
    assert not flist.contains("c.example.de")
    assert not flist.contains("example.de")
    assert flist.domains() == {"Praxis.Example.DE", "b.example.de"}


def test_contains_looks_up_the_hashed_list_by_sha256_digest() -> None:
    digest = hashlib.sha256(b"praxis.example.de").hexdigest()
    hashed = parse_federation_list(
        {"version": 3, "hashAlgorithm": "SHA-256", "domainList": [digest.upper()]}
    )
    assert hashed.contains("praxis.example.de")
    assert hashed.contains("Praxis.Example.de")  # hashed after lower-casing
    assert not hashed.contains("other.example.de")
    assert not hashed.contains(digest)  # the digest itself is not a member's name


def test_empty_list_contains_nothing() -> None:
    assert not FederationList(0).contains("praxis.example.de")


# -- lenient parsing ---------------------------------------------------------------------------


def test_parse_federation_list_accepts_every_known_shape() -> None:
    served = {  # as TU serves it: iks, timAnbieter null
        "version": 1650,
        "domainList": [
            {
                "domain": "a.de",
                "telematikID": "1-x",
                "timAnbieter": None,
                "iks": [],
                "isInsurance": False,
            },
            {
                "domain": "b.de",
                "telematikID": "5-y",
                "timProvider": "ORG-1",
                "ik": ["104940005"],
                "isInsurance": True,
            },
        ],
    }
    parsed = parse_federation_list(orjson.dumps(served))
    assert parsed.version == 1650
    assert parsed.entries[0].tim_anbieter is None
    assert parsed.entries[1].tim_anbieter == "ORG-1"
    assert parsed.entries[1].ik == ("104940005",)
    hashed = parse_federation_list(
        {"version": 3, "hashAlgorithm": "SHA-256", "domainList": ["ab12"]}
    )
    assert hashed.hash_algorithm == "SHA-256"
    assert hashed.domains() == {"ab12"}
    for bad in (
        b"[]",
        b"{",
        {"version": "1", "domainList": []},
        {"version": 1, "domainList": [{}]},
    ):
        with pytest.raises(FederationListError):
            parse_federation_list(bad)


# -- verification ------------------------------------------------------------------------------


def test_a_chain_to_a_trusted_anchor_passes(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    chain, key = _signer(pki)
    parsed = verify_list(_sign(chain, key), [_anchor(pki)], "BP256R1", now=NOW)
    assert parsed.version == 7
    assert parsed.contains("praxis.example.de")
    # the anchor itself may close the chain, and other anchors beside it do no harm
    other = _anchor(_pki(tmp_path, "other"))
    check_chain([*chain, _anchor(pki)], [other, _anchor(pki)], NOW)


def test_load_anchors_skips_missing_files(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    anchors = load_anchors([tmp_path / "missing.crt", pki.ca_cert_path])
    assert anchors == [_anchor(pki)]


def _rejected(excinfo: pytest.ExceptionInfo[ListVerificationError]) -> str:
    error = excinfo.value
    assert error.errcode == INVALID
    assert error.requirement == REQUIREMENT
    return error.message


def test_an_expired_certificate_is_rejected(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    cert, key = _expired_signer(pki)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(_sign([cert], key_pem), [_anchor(pki)], "BP256R1", now=NOW)
    assert "CN=expired signer" in _rejected(excinfo)
    assert "expired" in _rejected(excinfo)


def test_a_chain_to_an_untrusted_anchor_is_rejected(tmp_path: Path) -> None:
    forger = _pki(tmp_path, "forger")
    chain, key = _signer(forger)
    trusted = _anchor(_pki(tmp_path))
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(_sign(chain, key), [trusted], "BP256R1", now=NOW)
    assert "no trusted anchor" in _rejected(excinfo)


def test_a_broken_chain_is_rejected(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    chain, _ = _signer(pki)
    unrelated = _anchor(_pki(tmp_path, "unrelated"))
    with pytest.raises(ListVerificationError) as excinfo:
        check_chain([*chain, unrelated], [_anchor(pki)], NOW)
    assert "is not issued by CN=unrelated CA" in _rejected(excinfo)


def test_a_tampered_payload_is_rejected(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    chain, key = _signer(pki)
    header, _, signature = _sign(chain, key).split(b".")
    forged = {"version": 10**9, "domainList": [{"domain": "evil.example.de"}]}
    tampered = b".".join([header, jwt.b64url(orjson.dumps(forged)).encode(), signature])
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(tampered, [_anchor(pki)], "BP256R1", now=NOW)
    message = _rejected(excinfo)
    assert message.startswith("federation list rejected:")
    assert "signature is invalid" in message


def test_no_anchors_configured_is_rejected(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    chain, key = _signer(pki)
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(_sign(chain, key), [], "BP256R1", now=NOW)
    assert "no trust anchors configured" in _rejected(excinfo)


@pytest.mark.parametrize(
    ("jws", "expected"),
    [
        (b"not a jws", "compact JWS"),
        (b"\xff.\xff.\xff", "federation list rejected"),
    ],
)
def test_garbage_is_rejected(tmp_path: Path, jws: bytes, expected: str) -> None:
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(jws, [_anchor(_pki(tmp_path))], "BP256R1", now=NOW)
    assert expected in _rejected(excinfo)


def test_another_algorithm_than_expected_is_rejected(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    chain, key = _signer(pki)
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(_sign(chain, key), [_anchor(pki)], "ES256", now=NOW)
    assert "not accepted" in _rejected(excinfo)


def test_a_signed_payload_that_is_no_list_is_rejected(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    chain, key = _signer(pki)
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(_sign(chain, key, {"version": 1}), [_anchor(pki)], "BP256R1", now=NOW)
    assert "domainList" in _rejected(excinfo)


# -- issue 14, finding 2: the chain is checked as a chain, only the list signer may sign --------


def test_ml_123677_the_genuine_list_signer_verifies(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    signer = list_signer(pki)
    jws = sign_list(signer, [signer.cert], 3, ["praxis.tim.test"])
    assert verify_list(jws, [_anchor(pki)], "BP256R1", now=NOW).contains("praxis.tim.test")
    assert (
        verify_list(jws, [_anchor(pki)], "BP256R1", now=NOW, signer_role=LIST_SIGNER_ROLE).version
        == 3
    )


@pytest.mark.parametrize("curve", [ec.BrainpoolP256R1(), ec.SECP256R1()], ids=["BP256R1", "ES256"])
def test_ml_123677_a_chain_through_a_real_intermediate_ca_verifies(
    curve: ec.EllipticCurve,
) -> None:
    root = issue("Root CA", None, ca=True, path_length=1, key=ec.generate_private_key(curve))
    komp_ca = issue("KOMP-CA", root, ca=True, path_length=0, key=ec.generate_private_key(curve))
    signer = issue(
        "VZD-FHIR-FList-Signer",
        komp_ca,
        role=FEDERATION_LIST_SIGNER,
        key=ec.generate_private_key(curve),
    )
    alg = "ES256" if isinstance(curve, ec.SECP256R1) else "BP256R1"
    jws = sign_list(signer, [signer.cert, komp_ca.cert], 4, ["praxis.tim.test"])
    assert verify_list(jws, [root.cert], alg, now=NOW).version == 4
    # the anchor may also close the chain inside x5c
    jws = sign_list(signer, [signer.cert, komp_ca.cert, root.cert], 4, ["praxis.tim.test"])
    assert verify_list(jws, [root.cert], alg, now=NOW).version == 4


FORGERIES = (
    "tls-leaf-as-ca",
    "regservice-token-signer",
    "tls-leaf-key",
    "issuer-without-keycertsign",
    "path-length-exceeded",
    "expired-issuer",
    "signer-without-digitalsignature",
    "signer-without-role",
    "signer-other-role",
    "signer-without-fd-sig-policy",
    "signer-is-a-ca",
    "sha224-signature",
    "ed25519-issuer",
)
"""Every forgery of finding 2 that :func:`forgeries` builds, by name."""


@pytest.mark.parametrize("forgery", FORGERIES)
def test_ml_123677_every_forged_signer_is_refused(tmp_path: Path, forgery: str) -> None:
    pki = _pki(tmp_path)
    forged = forgeries(pki)[forgery]
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(forged.jws, [_anchor(pki)], forged.sig_alg, now=NOW)
    message = _rejected(excinfo)
    assert forged.rule in message
    assert EVIL not in message


def test_ml_123677_the_forgeries_cover_every_rule(tmp_path: Path) -> None:
    """The parametrised list above names every forgery the helper builds."""
    assert set(forgeries(_pki(tmp_path))) == set(FORGERIES)


def test_ml_123677_a_configured_role_replaces_the_default(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    signer = list_signer(pki)
    jws = sign_list(signer, [signer.cert], 3)
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(jws, [_anchor(pki)], "BP256R1", now=NOW, signer_role="1.2.276.0.76.4.999")
    assert "lacks the federation list signer role 1.2.276.0.76.4.999" in _rejected(excinfo)


def test_ml_123677_the_role_check_accepts_the_vzds_real_signer_certificate() -> None:
    cert = x509.load_der_x509_certificate(VZD_SIGNER.read_bytes())
    assert "GEM.KOMP-CA50" in cert.issuer.rfc4514_string()
    check_signer_role(cert)  # C.FD.SIG policy and Admission oid_vzd_ti, as the PKI issues
    with pytest.raises(ListVerificationError):
        check_signer_role(cert, "1.2.276.0.76.4.999")


def test_ml_123891_a_signer_issued_by_a_signer_is_refused(tmp_path: Path) -> None:
    """A list signer (CA:FALSE) cannot issue a certificate for another key either."""
    pki = _pki(tmp_path)
    genuine = list_signer(pki)
    child: Issued = issue("VZD-FHIR-FList-Signer", genuine, role=FEDERATION_LIST_SIGNER)
    with pytest.raises(ListVerificationError) as excinfo:
        verify_list(
            sign_list(child, [child.cert, genuine.cert]), [local_ca(pki).cert], "BP256R1", now=NOW
        )
    assert "is not a CA" in _rejected(excinfo)
