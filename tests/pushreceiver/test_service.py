"""Configuration, TLS, the derived public URL and the process entry point."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import webpush_async  # type: ignore[import-untyped]

from tests.pushreceiver.conftest import VapidKey, receiver_config
from timkit.core.config import load_toml
from timkit.core.errors import ConfigError
from timkit.core.jwt import key_from_pem, sign
from timkit.core.process import free_port
from timkit.core.tls import LocalPKI, client_ssl_context
from timkit.pushreceiver.__main__ import main
from timkit.pushreceiver.config import PushReceiverConfig
from timkit.pushreceiver.service import default_public_url, running

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "pushreceiver.sample.toml"


def test_sample_documents_the_defaults() -> None:
    assert load_toml(PushReceiverConfig, SAMPLE) == PushReceiverConfig()


def test_default_public_url() -> None:
    assert default_public_url("127.0.0.1", 8429, False) == "http://127.0.0.1:8429"
    assert default_public_url("0.0.0.0", 1, True) == "https://127.0.0.1:1"
    assert default_public_url("::1", 2, False) == "http://[::1]:2"


async def test_over_tls_with_a_public_url(tmp_path: Path, vapid: VapidKey) -> None:
    pki = LocalPKI(tmp_path)
    pki.ensure_ca()
    cert = pki.ensure_server_cert("push", ["localhost"])
    port = free_port()
    config = receiver_config(
        port=port,
        tls_cert=str(cert.cert),
        tls_key=str(cert.key),
        public_url=f"https://localhost:{port}/",
    )
    async with running(config) as receiver:
        assert receiver.public_url == f"https://localhost:{port}"
        subscription = receiver.subscribe_webpush()
        assert subscription["endpoint"].startswith(f"https://localhost:{port}/wp/")
        trust = client_ssl_context(pki.ca_cert_path)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
            response = await webpush_async(
                subscription,
                json.dumps({"event_id": "$tls"}),
                vapid_private_key=Vapid(vapid.private),
                vapid_claims={"sub": "mailto:push@a.tim.test"},
                aiohttp_session=session,
            )
        assert response.status == 201
        assert [p.payload for p in receiver.inbox.since(0)] == [{"event_id": "$tls"}]


async def test_apns_without_tls_is_a_config_error(tmp_path: Path) -> None:
    key = tmp_path / "AuthKey.p8"
    key.write_text(VapidKey.generate().pem)
    config = receiver_config(
        apns={"port": 0, "team_id": "TEAM", "keys": {"KEY1": str(key)}, "topics": ["de.tim"]}
    )
    with pytest.raises(ConfigError, match="apns: the APNs stand-in needs tls_cert"):
        async with running(config):
            pass


def test_main_names_a_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "pushreceiver.toml"
    bad.write_text("max_pushes = 0\n")
    assert main(["--config", str(bad)]) == 2
    assert "max_pushes" in capsys.readouterr().err


async def test_fcm_and_apns_stand_ins_share_the_receivers_faults(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path)
    pki.ensure_ca()
    cert = pki.ensure_server_cert("push", ["localhost"])
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = tmp_path / "sa.json"
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    account.write_text(json.dumps({"client_email": "gw@tim.test", "private_key": pem.decode()}))
    apns_key = tmp_path / "AuthKey.p8"
    apns_pem = VapidKey.generate().pem
    apns_key.write_text(apns_pem)
    config = receiver_config(
        tls_cert=str(cert.cert),
        tls_key=str(cert.key),
        public_url="https://localhost",
        fcm={"project_id": "timkit", "service_account_files": [str(account)]},
        apns={"port": 0, "team_id": "TEAM", "keys": {"KEY1": str(apns_key)}, "topics": ["de.t"]},
    )
    trust = client_ssl_context(pki.ca_cert_path)
    async with (
        running(config) as receiver,
        httpx.AsyncClient(verify=trust, http2=True, timeout=10) as http,
    ):
        base = f"https://localhost:{receiver.port}"
        token = await http.post(base + "/token", data={"grant_type": "nonsense"})
        assert token.status_code == 400  # the FCM routes are mounted and answer OAuth errors
        assert "error" in token.json()
        assert receiver.apns_port is not None
        device = "ab" * 32
        fault = {"target": device, "status": 500, "count": 1}
        assert (await http.post(base + "/api/faults", json=fault)).status_code == 201
        provider_token = sign(
            {"iss": "TEAM", "iat": int(time.time())}, key_from_pem(apns_pem.encode()), kid="KEY1"
        )
        response = await http.post(
            f"https://localhost:{receiver.apns_port}/3/device/{device}",
            headers={"authorization": f"bearer {provider_token}", "apns-topic": "de.t"},
            content=b'{"aps": {}}',
        )
        assert response.http_version == "HTTP/2"
        assert response.status_code == 500
        assert receiver.attempts.of(device)["statuses"] == [500]
