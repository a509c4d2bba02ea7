"""``python -m timkit.idp``: serves over TLS from its config, stops on SIGTERM, refuses bad
cards files at start naming the field."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import tomli_w
import yaml

from tests.support.wait import wait_until
from timkit.core.process import free_port
from timkit.core.tls import LocalPKI, client_ssl_context
from timkit.idp.handlers import s256


def _start(tmp_path: Path, **config: object) -> subprocess.Popen[str]:
    path = tmp_path / "idp.toml"
    path.write_text(tomli_w.dumps({"pki_dir": str(tmp_path / "pki"), **config}))
    return subprocess.Popen(
        [sys.executable, "-m", "timkit.idp", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_process_serves_a_code_flow_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    redirect = "http://127.0.0.1:1/cb"
    pki = LocalPKI(tmp_path / "pki")
    pki.ensure_ca()  # the process issues its certificate from this CA
    process = _start(
        tmp_path,
        port=port,
        signing="BP256R1",
        clients=[{"client_id": "rp", "redirect_uris": [redirect]}],
    )
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=client_ssl_context(pki.ca_cert_path)) as http:

            def healthy() -> bool:
                try:
                    return http.get(url + "/health").status_code == 200
                except httpx.TransportError:
                    assert process.poll() is None, process.communicate()
                    return False

            wait_until(healthy, "the IDP's /health")
            discovery = http.get(url + "/.well-known/openid-configuration").json()
            assert discovery["id_token_signing_alg_values_supported"] == ["BP256R1"]
            verifier = "v" * 43
            chosen = http.post(
                discovery["authorization_endpoint"],
                data={
                    "client_id": "rp",
                    "redirect_uri": redirect,
                    "response_type": "code",
                    "scope": "openid",
                    "state": "s",
                    "code_challenge": s256(verifier),
                    "code_challenge_method": "S256",
                    "card": "dr-sonnenschein",
                },
            )
            code = httpx.URL(chosen.headers["location"]).params["code"]
            token = http.post(
                discovery["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect,
                    "code_verifier": verifier,
                    "client_id": "rp",
                },
            )
            assert token.status_code == 200, token.text
            assert "id_token" in token.json()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr


def test_bad_cards_file_stops_the_start_naming_the_field(tmp_path: Path) -> None:
    cards = tmp_path / "cards.yaml"
    card = {"id": "x", "type": "HBA", "telematikID": "1-2", "professionOID": "1.2.276.0.76.4.50"}
    cards.write_text(yaml.safe_dump({"cards": [{**card, "given_name": "A", "family_name": "B"}]}))
    process = _start(tmp_path, port=free_port(), cards_file=str(cards))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "cards.0.professionOID: card 'x'" in stderr
    assert "institution (SMC-B)" in stderr


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    process = _start(tmp_path, port=free_port(), code_lifetme=30)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "code_lifetme: unknown key" in stderr
