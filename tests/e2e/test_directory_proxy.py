"""The VZD-FHIR-Directory's FHIR-Proxy as ``timkit up`` runs it: TLS, real Synapse tokens.

A user of a local Messenger-Service asks their Synapse for a Matrix OpenID token, exchanges
it at ``/tim-authenticate`` (the proxy checks it at that Synapse over TLS) and searches the
directory with the search-accesstoken. The domains the local run's Registrierungs-Dienst
registered as a provider are in the signed federation list, whose signature and certificate
chain are checked against the local CA.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256

from tests.support.federation import Federation, timkit
from timkit.core import jwt
from timkit.core.fhir import CONNECTION_TYPE, ORIGIN, PAYLOAD_TYPE
from timkit.core.tls import LocalPKI
from timkit.runtime.config import MessengerServiceConfig
from timkit.runtime.demo import telematik_id
from timkit.runtime.layout import Layout
from timkit.runtime.plan import RD_PROVIDER

A = "praxis-sonnenschein.tim.test"
B = "klinikum-nord.tim.test"


def proxy_component(federation: Federation) -> dict[str, Any]:
    return federation.component("fhir-proxy")


def tls_client(federation: Federation) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=federation.ca_cert), timeout=30)


def openid_token(federation: Federation, domain: str, localpart: str) -> str:
    mxid = federation.add_user(domain, localpart, "correct horse battery staple")
    base = federation.client_url(domain)
    with tls_client(federation) as client:
        login = client.post(
            f"{base}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": mxid},
                "password": "correct horse battery staple",
            },
        )
        login.raise_for_status()
        access = login.json()["access_token"]
        response = client.post(
            f"{base}/_matrix/client/v3/user/{quote(mxid)}/openid/request_token",
            json={},
            headers={"Authorization": f"Bearer {access}"},
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


def provider_token(federation: Federation, url: str) -> str:
    layout = Layout(Path(federation.status()["data_dir"]))
    credentials = json.loads(layout.provider_credentials.read_text())
    with tls_client(federation) as client:
        token = client.post(
            f"{url}/token",
            data={"grant_type": "client_credentials"},
            auth=(credentials["client_id"], credentials["client_secret"]),
        )
        token.raise_for_status()
        provider = client.get(
            f"{url}/ti-provider-authenticate",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        provider.raise_for_status()
        return str(provider.json()["access_token"])


def test_fhir_proxy_runs_over_tls_in_front_of_the_directory(federation: Federation) -> None:
    proxy = proxy_component(federation)
    assert proxy["healthy"] is True
    assert proxy["url"].startswith("https://127.0.0.1:")
    with tls_client(federation) as client:
        assert client.get(f"{proxy['url']}/search/HealthcareService").status_code == 401


@pytest.mark.timeout(120)
def test_ml_123485_real_synapse_openid_token_buys_a_search_token(federation: Federation) -> None:
    url = proxy_component(federation)["url"]
    openid = openid_token(federation, A, "searcher")
    with tls_client(federation) as client:
        response = client.get(
            f"{url}/tim-authenticate",
            params={"mxId": A},
            headers={"X-Matrix-OpenID-Token": openid},
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        found = client.get(
            f"{url}/search/Endpoint",
            params={
                "address": f"matrix:u/empfang:{B}",
                "_revinclude": "HealthcareService:endpoint",
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert found.status_code == 200, found.text
        kinds = sorted(e["resource"]["resourceType"] for e in found.json()["entry"])
        assert kinds == ["Endpoint", "HealthcareService"]
        assert all(e["fullUrl"].startswith(f"{url}/search/") for e in found.json()["entry"])
        # A token for one server is not accepted for another.
        wrong = client.get(
            f"{url}/tim-authenticate",
            params={"mxId": B},
            headers={"X-Matrix-OpenID-Token": openid},
        )
        assert wrong.status_code == 401


def _verify_bp256r1(jws: str, ca_cert: str) -> dict[str, Any]:
    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header_b64, payload_b64, signature_b64 = jws.split(".")
    header = json.loads(decode(header_b64))
    assert header["alg"] == "BP256R1"
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    ca = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
    leaf.verify_directly_issued_by(ca)
    signature = decode(signature_b64)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "brainpoolP256r1"
    public.verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(SHA256()))
    return dict(json.loads(decode(payload_b64)))


def test_demo_domains_are_in_the_signed_federation_list(federation: Federation) -> None:
    url = proxy_component(federation)["url"]
    token = provider_token(federation, url)
    with tls_client(federation) as client:
        response = client.get(
            f"{url}/tim-provider-services/FederationList/federationList.jws",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
    payload = _verify_bp256r1(response.text.strip(), federation.ca_cert)
    domains = {entry["domain"] for entry in payload["domainList"]}
    assert {A, B} <= domains
    assert payload["version"] >= 1


def regservice_token(federation: Federation, url: str, tmp_path: Path, telematik_id: str) -> str:
    """Register a RegService signing certificate for the RD's provider (operator CLI) and sign
    a RegService-OpenID-Token for ``telematik_id`` with it."""
    signer = LocalPKI(tmp_path / "regservice-pki").ensure_signing_cert(
        "regservice", "Registrierungs-Dienst timkit-demo"
    )
    timkit(federation.config, "directory", "provider", "cert", RD_PROVIDER, str(signer.cert))
    now = int(time.time())
    return jwt.sign(
        {
            "sub": "org-admin@praxis-sonnenschein",
            "iss": "https://registration.praxis-sonnenschein.tim.test",
            "aud": f"{url}/owner-authenticate",
            "professionOID": "1.2.276.0.76.4.50",
            "idNummer": telematik_id,
            "iat": now,
            "exp": now + 300,
        },
        jwt.key_from_pem(signer.key.read_bytes()),
        x5c=jwt.x5c_of([x509.load_pem_x509_certificate(signer.cert.read_bytes())]),
    )


def owner_token(federation: Federation, url: str, tmp_path: Path, telematik_id: str) -> str:
    """A RegService-OpenID-Token (:func:`regservice_token`) exchanged at
    ``/owner-authenticate``: an owner-accesstoken."""
    token = regservice_token(federation, url, tmp_path, telematik_id)
    with tls_client(federation) as client:
        response = client.get(
            f"{url}/owner-authenticate", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.mark.timeout(120)
def test_ml_123876_use_cases_against_the_real_neighbour_systems(
    federation: Federation, tmp_path: Path
) -> None:
    """AF_10037 and AF_10036 through the running processes: the owner of the demo practice
    publishes a new TI-M endpoint with a RegService-OpenID-Token; a user of the other
    organisation, authenticated by their real Synapse, finds it; the audit log names the owner.
    (AF_10048 is the federation list test above; AF_10047 runs against a real slapd.)"""
    url = proxy_component(federation)["url"]
    service = MessengerServiceConfig(domain=A, organisation="-", port=1, forward_proxy_port=2)
    tid = telematik_id(service)
    owner = owner_token(federation, url, tmp_path, tid)
    endpoint = {
        "resourceType": "Endpoint",
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPE, "code": "tim"},
        "name": "Sprechstunde Dr. Sonnenschein",
        "payloadType": [{"coding": [{"system": PAYLOAD_TYPE, "code": "tim-chat"}]}],
        "address": f"matrix:u/sprechstunde:{A}",
        "managingOrganization": {"reference": "Organization/praxis-sonnenschein-org"},
    }
    with tls_client(federation) as client:
        created = client.post(
            f"{url}/owner/Endpoint",
            json=endpoint,
            headers={"Authorization": f"Bearer {owner}", "Content-Type": "application/fhir+json"},
        )
        assert created.status_code == 201, created.text
        tags = created.json()["meta"]["tag"]
        assert {"system": ORIGIN, "code": "owner"} in [
            {"system": t["system"], "code": t["code"]} for t in tags
        ]
        search = client.get(
            f"{url}/tim-authenticate",
            params={"mxId": B},
            headers={"X-Matrix-OpenID-Token": openid_token(federation, B, "finder")},
        ).json()["access_token"]
        found = client.get(
            f"{url}/search/Endpoint",
            params={"address": f"matrix:u/sprechstunde:{A}"},
            headers={"Authorization": f"Bearer {search}"},
        ).json()
        assert [e["resource"]["name"] for e in found["entry"]] == [endpoint["name"]]
    audit = json.loads(timkit(federation.config, "directory", "audit", "--json").stdout)
    assert any(
        row["actor"] == f"owner:{tid}"
        and row["action"] == "POST /owner/Endpoint"
        and row["status"] == 201
        for row in audit
    )
