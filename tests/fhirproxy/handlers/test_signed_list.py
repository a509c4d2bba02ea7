"""The federation list: domain rules, generation, signatures checked independently, versions.

Signatures are verified without timkit's JWS code: ES256 with ``joserfc``, BP256R1 with
``cryptography`` directly (ECDSA brainpoolP256r1 over ``header.payload``), and the ``x5c``
chain against the local PKI's CA.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey

from timkit.core.db import Database
from timkit.core.errors import TimkitError
from timkit.core.federation_list import ListVerificationError, verify_list
from timkit.core.signers import Signer, SignerConfig, load_signer
from timkit.core.tls import LocalPKI
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.handlers.signed_list import (
    Domain,
    Federation,
    SigAlg,
    SignedList,
    check_domain_name,
    check_ik,
    current_list,
    ik_check_digit,
    load_list_signers,
    parse_domain,
)
from timkit.fhirproxy.service import open_database


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_bp256r1(token: bytes, ca: x509.Certificate) -> dict[str, Any]:
    """Verify a BP256R1 JWS with ``cryptography`` only; return its header."""
    header_b64, payload_b64, signature_b64 = token.decode().split(".")
    header: dict[str, Any] = orjson.loads(_b64(header_b64))
    assert header["alg"] == "BP256R1"
    assert header["typ"] == "JWT"
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "brainpoolP256r1"
    raw = _b64(signature_b64)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    leaf.verify_directly_issued_by(ca)
    return header


def verify_es256(token: bytes, ca: x509.Certificate) -> bytes:
    """Verify an ES256 JWS with ``joserfc``; return the payload."""
    header = orjson.loads(_b64(token.decode().split(".")[0]))
    assert header["typ"] == "JWT"
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    leaf.verify_directly_issued_by(ca)
    key = ECKey.import_key(leaf.public_key())  # type: ignore[arg-type]
    registry = jws.JWSRegistry(algorithms=["ES256"])
    registry.max_header_length = 16_384  # x5c makes headers larger than joserfc's default
    registry.max_payload_length = 64 * 1024 * 1024
    verified = jws.deserialize_compact(token, key, registry=registry)
    assert verified.protected["alg"] == "ES256"
    return verified.payload


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local PKI directory shared by the module's tests."""
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def signers(pki: Path) -> dict[SigAlg, Signer]:
    """Both list signers, issued by the local PKI."""
    return load_list_signers(FhirProxyConfig(pki_dir=pki))


@pytest.fixture
def db(tmp_path: Path) -> Any:
    """A fresh SQLite proxy database."""
    database = open_database(f"sqlite:///{tmp_path}/proxy.db")
    yield database
    database.close()


def _domain(name: str, owner: str = "provider-a", **kw: Any) -> Domain:
    return Domain(name, kw.pop("telematik_id", "1-2.58.00000040"), tim_anbieter=owner, **kw)


# -- domain rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ik", "valid"),
    [
        ("108433248", True),  # the yaml's examples
        ("104127692", True),
        ("104940005", True),  # served on TU
        ("108433249", False),  # wrong check digit
        ("208433248", False),  # classification 20
        ("10843324", False),  # 8 digits
        ("1084332480", False),
        ("10843324a", False),
    ],
)
def test_af_10048_ik_rules(ik: str, valid: bool) -> None:
    if valid:
        assert check_ik(ik) == ik
    else:
        with pytest.raises(ValueError, match=r"\d|digit|string"):
            check_ik(ik)


def test_af_10048_ik_check_digit_is_the_gkv_example() -> None:
    # GR-IK 1.2.5: 26032682 -> check digit 2 (the classification 26 is left out).
    assert ik_check_digit("26032682") == 2
    assert check_ik(108433248) == "108433248"  # integers, as the HOWTO sends them


@pytest.mark.parametrize(
    "name", ["a", "example.de:8448", "-x.example.de", "x_y.example.de", "example.123", "a..de"]
)
def test_af_10048_domain_syntax_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"port|DNS name"):
        check_domain_name(name)


def test_af_10048_domain_is_lower_cased() -> None:
    assert check_domain_name("Praxis.TIM.test") == "praxis.tim.test"


def test_af_10048_parse_domain_collects_every_error() -> None:
    with pytest.raises(TimkitError) as caught:
        parse_domain(
            {"domain": "bad domain", "telematikID": "", "isInsurance": "yes", "ik": ["1"]},
            owner="p",
        )
    assert caught.value.status == 400
    names = {e["attributeName"] for e in caught.value.extra["errors"]}
    assert names == {"domain", "telematikID", "isInsurance", "ik"}


def test_af_10048_ik_required_iff_insurance() -> None:
    base = {"domain": "kk.example.de", "telematikID": "8-01-1234"}
    with pytest.raises(TimkitError) as missing:
        parse_domain({**base, "isInsurance": True}, owner="p")
    assert missing.value.extra["errors"][0]["attributeName"] == "ik"
    with pytest.raises(TimkitError) as extra:
        parse_domain({**base, "isInsurance": False, "ik": ["108433248"]}, owner="p")
    assert extra.value.status == 400
    with pytest.raises(TimkitError) as repeated:
        parse_domain({**base, "isInsurance": True, "ik": ["108433248", 108433248]}, owner="p")
    assert repeated.value.status == 409


def test_af_10048_tim_anbieter_is_the_caller() -> None:
    domain = parse_domain(
        {
            "domain": "KK.example.de",
            "telematikID": "8-01-1234",
            "isInsurance": True,
            "ik": [108433248],
            "timAnbieter": "someone-else",
            "redirectDomains": ["r1.example.de", "R1.example.de"],
        },
        owner="provider-a",
    )
    assert domain == Domain(
        "kk.example.de", "8-01-1234", True, ("108433248",), "provider-a", ("r1.example.de",)
    )


# -- generation and signatures -----------------------------------------------------------------


def test_ml_123677_list_verified_by_independent_libraries(
    db: Database, signers: dict[SigAlg, Signer], pki: Path
) -> None:
    federation = Federation(db, signers)
    federation.add(_domain("b.example.de"))
    federation.add(
        _domain(
            "a.example.de", "provider-b", is_insurance=True, ik=("108433248",), telematik_id="8-01"
        )
    )
    latest = federation.latest()
    ca, _ = LocalPKI(pki).ensure_ca()

    header = verify_bp256r1(latest.jws(SigAlg.BP256R1), ca)
    assert len(header["x5c"]) >= 1
    payload = verify_es256(latest.jws(SigAlg.ES256), ca)
    assert payload == latest.payload
    assert orjson.loads(payload) == {
        "version": 2,
        "domainList": [
            {
                "domain": "a.example.de",
                "telematikID": "8-01",
                "isInsurance": True,
                "ik": ["108433248"],
                "timAnbieter": "provider-b",
            },
            {
                "domain": "b.example.de",
                "telematikID": "1-2.58.00000040",
                "isInsurance": False,
                "ik": [],
                "timAnbieter": "provider-a",
            },
        ],
    }
    # The payload the JWS carries is the stored payload, byte for byte.
    assert _b64(latest.jws().decode().split(".")[1]) == latest.payload


def test_ml_123677_versions_strictly_increase_and_are_never_reused(
    db: Database, signers: dict[SigAlg, Signer]
) -> None:
    federation = Federation(db, signers, keep=2)
    versions = [federation.add(_domain("x.example.de")).version]
    versions.append(federation.update(_domain("x.example.de", telematik_id="2-x")).version)
    versions.append(federation.remove("x.example.de", "provider-a").version)
    versions.append(federation.add(_domain("x.example.de")).version)
    versions.append(federation.remove("X.example.de", "provider-a").version)
    assert versions == [1, 2, 3, 4, 5]
    assert federation.latest().parsed().entries == ()
    with db.read() as cur:  # pruned to the newest two, the highest is kept
        rows = cur.execute("SELECT version FROM federation_lists ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [4, 5]


def test_ml_123677_failed_change_writes_no_list(
    db: Database, signers: dict[SigAlg, Signer]
) -> None:
    federation = Federation(db, signers)
    federation.add(_domain("x.example.de"))
    with pytest.raises(TimkitError) as taken:
        federation.add(_domain("x.example.de", "provider-b"))
    assert taken.value.status == 409
    with pytest.raises(TimkitError) as foreign:
        federation.remove("x.example.de", "provider-b")
    assert foreign.value.status == 403
    with pytest.raises(TimkitError) as unknown:
        federation.update(_domain("y.example.de"))
    assert unknown.value.status == 404
    assert federation.latest().version == 1


def test_af_10048_ik_unique_list_wide(db: Database, signers: dict[SigAlg, Signer]) -> None:
    federation = Federation(db, signers)
    federation.add(_domain("kk1.example.de", is_insurance=True, ik=("108433248",)))
    with pytest.raises(TimkitError) as caught:
        federation.add(
            _domain("kk2.example.de", "provider-b", is_insurance=True, ik=("108433248",))
        )
    assert caught.value.status == 409
    # Its own IKs do not conflict with an update of the same domain.
    federation.update(_domain("kk1.example.de", is_insurance=True, ik=("108433248", "104127692")))
    federation.remove("kk1.example.de", "provider-a")
    federation.add(_domain("kk2.example.de", "provider-b", is_insurance=True, ik=("108433248",)))


def test_ml_123677_two_instances_serve_the_same_list(
    tmp_path: Path, signers: dict[SigAlg, Signer]
) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    db_a, db_b = open_database(url), open_database(url)
    try:
        first, second = Federation(db_a, signers), Federation(db_b, signers)
        first.add(_domain("a.example.de"))
        assert second.latest().jws() == first.latest().jws()
        second.add(_domain("b.example.de"))
        assert first.latest().version == 2
        assert first.latest().jws(SigAlg.ES256) == second.latest().jws(SigAlg.ES256)
        assert current_list(db_a).domains() == {"a.example.de", "b.example.de"}
    finally:
        db_a.close()
        db_b.close()


def test_current_list_without_any_list(db: Database) -> None:
    assert current_list(db).version == 0


def test_signed_list_reassembles_compact_jws() -> None:
    stored = SignedList(7, b'{"version":7}', {SigAlg.BP256R1: "aGVhZA..c2ln", SigAlg.ES256: "x..y"})
    assert stored.jws() == b"aGVhZA.eyJ2ZXJzaW9uIjo3fQ.c2ln"


def test_ml_123677_a_list_signed_before_the_signer_role_is_re_signed(tmp_path: Path) -> None:
    """A data directory of an earlier run: its list signers lack the role and its stored list
    carries their x5c. The FHIR-Proxy re-issues the signers and serves a re-signed version
    that verifies; a list signed by a current signer is not re-signed again."""
    pki_dir = tmp_path / "pki"
    old_signers = {
        alg: load_signer(
            SignerConfig(), pki_dir, name=name, common_name="old", curve=curve, path="old"
        )
        for alg, name, curve in [
            (SigAlg.BP256R1, "fhir-proxy-federation-list-bp256r1", ec.BrainpoolP256R1()),
            (SigAlg.ES256, "fhir-proxy-federation-list-es256", ec.SECP256R1()),
        ]
    }
    db = open_database(f"sqlite:///{tmp_path}/proxy.db")
    try:
        Federation(db, old_signers).add(_domain("a.example.de"))
        anchor = LocalPKI(pki_dir).ensure_ca()[0]
        old = Federation(db, old_signers).latest()
        with pytest.raises(ListVerificationError):
            verify_list(old.jws(SigAlg.BP256R1), [anchor], "BP256R1", now=datetime.now(UTC))
        federation = Federation.open(FhirProxyConfig(pki_dir=pki_dir), db)
        renewed = federation.latest()
        assert renewed.version == old.version + 1
        for alg in SigAlg:
            parsed = verify_list(renewed.jws(alg), [anchor], alg.value, now=datetime.now(UTC))
            assert parsed.contains("a.example.de")
        # another instance with the same signers reads it without re-signing
        assert Federation.open(FhirProxyConfig(pki_dir=pki_dir), db).latest().version == (
            renewed.version
        )
    finally:
        db.close()
