"""The local PKI issues certificates that real TLS clients accept, and reuses them."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509

from timkit.core import tls
from timkit.core.tls import LocalPKI, client_ssl_context, server_ssl_context

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
