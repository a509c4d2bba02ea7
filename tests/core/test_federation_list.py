"""The federation list reader and verifier shared by the FHIR-Proxy, the RD and the proxy.

Signed lists are made like the VZD-FHIR-Directory makes them: a BP256R1 signing certificate
of a local PKI, its chain in ``x5c``; the PKI's CA is the trust anchor.
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

from timkit.core import jwt
from timkit.core.federation_list import (
    INVALID,
    REQUIREMENT,
    FederationList,
    FederationListError,
    ListEntry,
    ListVerificationError,
    check_chain,
    load_anchors,
    parse_federation_list,
    verify_list,
)
from timkit.core.tls import LocalPKI

NOW = dt.datetime.now(dt.UTC)
PAYLOAD = {"version": 7, "domainList": [{"domain": "praxis.example.de"}]}


def _pki(tmp_path: Path, name: str = "pki") -> LocalPKI:
    pki = LocalPKI(tmp_path / name, ca_name=f"{name} CA")
    pki.ensure_ca()
    return pki


def _signer(pki: LocalPKI) -> tuple[list[x509.Certificate], bytes]:
    """The BP256R1 list signer's chain (leaf only) and private key PEM."""
    paths = pki.ensure_signing_cert("flist", "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1())
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
    assert "not a certificate chain" in _rejected(excinfo)


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
