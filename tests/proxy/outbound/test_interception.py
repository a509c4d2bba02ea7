"""The interception CA: minted leaf certificates and the bounded per-host context cache."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from timkit.core.errors import ConfigError
from timkit.core.tls import LocalPKI
from timkit.proxy.outbound.interception import (
    CACHE_SIZE,
    LEAF_LIFETIME,
    REMINT_AFTER,
    InterceptionCA,
)


@pytest.fixture
def pki(tmp_path: Path) -> LocalPKI:
    pki = LocalPKI(tmp_path / "interception", "interception CA")
    pki.ensure_ca()
    return pki


def _ca(
    pki: LocalPKI, cache_size: int = CACHE_SIZE, clock: Callable[[], float] = time.monotonic
) -> InterceptionCA:
    return InterceptionCA(pki.ca_cert_path, pki.ca_key_path, cache_size=cache_size, clock=clock)


def test_leaf_is_p256_names_the_host_and_is_signed_by_the_ca(pki: LocalPKI) -> None:
    ca = _ca(pki)
    cert = ca.issue("klinikum-nord.tim.test")
    cert.verify_directly_issued_by(ca.cert)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["klinikum-nord.tim.test"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - now <= LEAF_LIFETIME


def test_ip_literal_and_very_long_names_get_valid_certificates(pki: LocalPKI) -> None:
    ca = _ca(pki)
    ip = ca.issue("127.0.0.1").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [str(a) for a in ip.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    long_name = ".".join(["a" * 30] * 4) + ".test"  # over the 64 characters a CN may hold
    cert = ca.issue(long_name)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.DNSName) == [long_name]


def test_contexts_are_cached_per_host_in_a_bounded_lru(pki: LocalPKI) -> None:
    ca = _ca(pki, cache_size=2)
    a = ca.context_for("a.test")
    b = ca.context_for("b.test")
    assert ca.context_for("a.test") is a  # hit; b is now least recently used
    ca.context_for("c.test")
    assert len(ca) == 2
    assert ca.context_for("a.test") is a
    assert ca.context_for("b.test") is not b  # was evicted, minted afresh


def test_cached_contexts_are_reminted_before_the_leaf_expires(pki: LocalPKI) -> None:
    now = [1000.0]
    ca = _ca(pki, clock=lambda: now[0])
    first = ca.context_for("a.test")
    now[0] += REMINT_AFTER - 1
    assert ca.context_for("a.test") is first
    now[0] += 2
    assert ca.context_for("a.test") is not first
    assert LEAF_LIFETIME.total_seconds() > REMINT_AFTER


def test_missing_ca_paths_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="interception_ca_cert"):
        InterceptionCA(None, None)


def test_unreadable_mismatched_or_non_ca_material_is_a_config_error(
    pki: LocalPKI, tmp_path: Path
) -> None:
    other = LocalPKI(tmp_path / "other")
    other.ensure_ca()
    leaf = other.ensure_server_cert("leaf.test", ["leaf.test"])
    with pytest.raises(ConfigError, match="cannot load"):
        InterceptionCA(tmp_path / "missing.crt", pki.ca_key_path)
    with pytest.raises(ConfigError, match="does not belong"):
        InterceptionCA(pki.ca_cert_path, other.ca_key_path)
    with pytest.raises(ConfigError, match="not a CA"):
        InterceptionCA(leaf.cert, leaf.key)
