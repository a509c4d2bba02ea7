"""The local PKI issues certificates that real TLS clients accept, and reuses them."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core import tls
from timkit.core.certpath import (
    OID_FD_SIG,
    OID_POLICY_GEM_OR_CP,
    OID_VZD_TI,
    admission_roles,
    policy_oids,
)
from timkit.core.federation_list import ListVerificationError, check_signer_role
from timkit.core.tls import (
    FEDERATION_LIST_SIGNER,
    LocalPKI,
    client_ssl_context,
    server_ssl_context,
)

DOMAIN = "praxis-sonnenschein.tim.test"


async def _handshake(pki: LocalPKI, paths: tls.CertPaths, server_hostname: str) -> str:
    """TLS handshake over loopback; returns what the server sent."""

    async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ssl_context(paths))
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1",
            port,
            ssl=client_ssl_context(pki.ca_cert_path),
            server_hostname=server_hostname,
        )
        data = await reader.read()
        writer.close()
        return data.decode()
    finally:
        server.close()
        await server.wait_closed()


async def test_certificate_is_trusted_for_its_names(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path)
    paths = pki.ensure_server_cert(DOMAIN, [DOMAIN, "localhost", "127.0.0.1"])
    assert await _handshake(pki, paths, DOMAIN) == "hello"
    assert await _handshake(pki, paths, "127.0.0.1") == "hello"


async def test_certificate_is_refused_for_other_names(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path)
    paths = pki.ensure_server_cert(DOMAIN, [DOMAIN])
    with pytest.raises(Exception, match="certificate verify failed"):
        await _handshake(pki, paths, "klinikum-nord.tim.test")


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path)
    paths = pki.ensure_server_cert(DOMAIN, [DOMAIN])
    for key in (paths.key, pki.ca_key_path):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_valid_certificates_are_reused(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path)
    first = pki.ensure_server_cert(DOMAIN, [DOMAIN, "localhost"])
    cert, ca = first.cert.read_bytes(), pki.ca_cert_path.read_bytes()
    again = LocalPKI(tmp_path).ensure_server_cert(DOMAIN, [DOMAIN])
    assert again.cert.read_bytes() == cert
    assert pki.ca_cert_path.read_bytes() == ca


def test_new_name_reissues_the_certificate(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path)
    old = pki.ensure_server_cert(DOMAIN, [DOMAIN]).cert.read_bytes()
    paths = pki.ensure_server_cert(DOMAIN, [DOMAIN, "127.0.0.1"])
    assert paths.cert.read_bytes() != old
    sans = x509.load_pem_x509_certificate(paths.cert.read_bytes()).extensions
    names = sans.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_expiring_certificate_is_renewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = LocalPKI(tmp_path)
    monkeypatch.setattr(tls, "CERT_LIFETIME", dt.timedelta(days=10))
    short = pki.ensure_server_cert(DOMAIN, [DOMAIN]).cert.read_bytes()
    monkeypatch.setattr(tls, "CERT_LIFETIME", dt.timedelta(days=397))
    renewed = pki.ensure_server_cert(DOMAIN, [DOMAIN]).cert
    assert renewed.read_bytes() != short
    expiry = x509.load_pem_x509_certificate(renewed.read_bytes()).not_valid_after_utc
    assert expiry - dt.datetime.now(dt.UTC) > dt.timedelta(days=390)


def test_missing_ca_reissues_everything(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path)
    paths = pki.ensure_server_cert(DOMAIN, [DOMAIN])
    pki.ca_cert_path.unlink()
    pki.ca_key_path.unlink()
    old = paths.cert.read_bytes()
    paths = pki.ensure_server_cert(DOMAIN, [DOMAIN])
    cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_cert_path.read_bytes())
    assert paths.cert.read_bytes() != old
    cert.verify_directly_issued_by(ca)


# -- the federation list signer's role (issue 14, finding 2) ------------------------------------


def _load(paths: tls.CertPaths) -> x509.Certificate:
    return x509.load_pem_x509_certificate(paths.cert.read_bytes())


def test_ml_123677_only_the_list_signer_carries_the_list_signer_role(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path / "pki")
    signer = _load(
        pki.ensure_signing_cert(
            "flist",
            "VZD-FHIR-FList-Signer",
            curve=ec.BrainpoolP256R1(),
            role=FEDERATION_LIST_SIGNER,
        )
    )
    assert admission_roles(signer) == {OID_VZD_TI}
    assert policy_oids(signer) == {OID_POLICY_GEM_OR_CP, OID_FD_SIG}
    check_signer_role(signer)
    others = [
        _load(pki.ensure_server_cert(DOMAIN, [DOMAIN])),
        _load(
            pki.ensure_signing_cert(
                "registration-token-signer", "RegService", curve=ec.BrainpoolP256R1()
            )
        ),
        _load(pki.ensure_signing_cert("idp-signer", "IDP")),
    ]
    for cert in others:
        assert admission_roles(cert) == frozenset()
        with pytest.raises(ListVerificationError):
            check_signer_role(cert)


def test_ml_123677_a_signer_from_before_roles_is_reissued_with_the_role(tmp_path: Path) -> None:
    """A data directory of an earlier run holds list signers without the role: the next
    start (the FHIR-Proxy's ``load_signer``) re-issues them; unchanged ones are reused."""
    pki = LocalPKI(tmp_path / "pki")
    old = pki.ensure_signing_cert("flist", "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1())
    before = old.cert.read_bytes()
    upgraded = pki.ensure_signing_cert(
        "flist", "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1(), role=FEDERATION_LIST_SIGNER
    )
    assert upgraded.cert.read_bytes() != before
    check_signer_role(_load(upgraded))
    again = pki.ensure_signing_cert(
        "flist", "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1(), role=FEDERATION_LIST_SIGNER
    )
    assert again.cert.read_bytes() == upgraded.cert.read_bytes()
    # asked without the role (a file stem reused for another signer), the role is dropped
    plain = pki.ensure_signing_cert("flist", "other", curve=ec.BrainpoolP256R1())
    assert admission_roles(_load(plain)) == frozenset()
