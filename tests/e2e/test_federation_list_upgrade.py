"""``timkit up`` on a data directory from before the federation list signer role (issue 14).

Such a directory holds list signers without the role, and the FHIR-Proxy's newest list, the
RD's stored list and the proxy's state file are all signed by them: lists that no longer
verify (ML-123677). The test builds exactly that state in a real ``var/`` between a
``timkit down`` and a ``timkit up`` and proves the restarted run re-issues the signers,
re-signs the list as a new version and gets it to the proxy again.
"""

from __future__ import annotations

import ssl
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.federation import DOMAINS, Federation, running, write_config
from tests.support.wait import async_wait_until
from timkit.core import jwt
from timkit.core.db import Database
from timkit.core.federation_list import (
    ListVerificationError,
    check_signer_role,
    load_anchors,
    verify_list,
)
from timkit.core.signers import SignerConfig, load_signer
from timkit.fhirproxy.handlers.signed_list import Federation as ListFederation
from timkit.fhirproxy.handlers.signed_list import SigAlg
from timkit.fhirproxy.service import open_database
from timkit.registration.storage import federation_list
from timkit.runtime.layout import Layout
from timkit.runtime.plan import FHIR_PROXY_KIND

SIGNERS = {
    SigAlg.BP256R1: ("fhir-proxy-federation-list-bp256r1", ec.BrainpoolP256R1()),
    SigAlg.ES256: ("fhir-proxy-federation-list-es256", ec.SECP256R1()),
}


async def _proxy_health(client: httpx.AsyncClient, federation: Federation) -> dict[str, Any]:
    response = await client.get(federation.client_url(DOMAINS[0]) + "/health")
    return dict(response.json())


def _make_it_an_old_data_directory(layout: Layout) -> bytes:
    """Role-less list signers, and a list signed by them everywhere it is kept; its JWS."""
    old_signers = {
        alg: load_signer(
            SignerConfig(),
            layout.pki,
            name=name,
            common_name="VZD-FHIR-FList-Signer",
            curve=curve,
            path="old",
        )
        for alg, (name, curve) in SIGNERS.items()
    }
    db = open_database(f"sqlite:///{layout.root / FHIR_PROXY_KIND / 'fhir-proxy.db'}")
    try:
        old = ListFederation(db, old_signers).regenerate()
    finally:
        db.close()
    jws = old.jws(SigAlg.BP256R1)
    rd = Database.open(f"sqlite:///{layout.registration / 'registration.db'}")
    try:
        with rd.write() as tx:
            assert federation_list.save(
                tx, old.version, jws, int(time.time() * 1000), datetime.now(UTC).isoformat()
            )
    finally:
        rd.close()
    state = layout.service_dir(DOMAINS[0]) / "proxy" / "federation-list.json"
    state.write_bytes(orjson.dumps({"jws": jws.decode(), "refreshed": time.time()}))
    return jws


@pytest.mark.timeout(600)
async def test_ml_123677_timkit_up_on_a_data_directory_from_before_the_signer_role(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, services=1)
    with running(config) as federation:
        layout = Layout(federation.data_dir)
        anchors = load_anchors([layout.ca_cert])
        verify = ssl.create_default_context(cafile=str(layout.ca_cert))
        async with httpx.AsyncClient(verify=verify, timeout=30) as client:
            health = await async_wait_until(
                lambda: _has_list(client, federation), "the proxy's first list", timeout=120
            )
    before = int(health["federation_list_version"])

    old_jws = _make_it_an_old_data_directory(layout)
    with pytest.raises(ListVerificationError):
        verify_list(old_jws, anchors, "BP256R1", now=datetime.now(UTC))
    old_version = int(orjson.loads(_payload(old_jws))["version"])
    assert old_version > before

    with running(config):
        async with httpx.AsyncClient(verify=verify, timeout=30) as client:
            health = await async_wait_until(
                lambda: _has_list(client, federation, above=old_version),
                "a re-signed list at the proxy",
                timeout=120,
            )
            assert health["status"] == "ok"
            token = layout.proxies_token.read_text("utf-8").strip()
            served = await client.get(
                f"{federation.portal_url}/federation",
                headers={"Authorization": f"Bearer {token}"},
            )
        assert served.status_code == 200
        verified = verify_list(served.content, anchors, "BP256R1", now=datetime.now(UTC))
        assert verified.version > old_version
        assert verified.contains(DOMAINS[0])
        for name, _ in SIGNERS.values():
            cert = x509.load_pem_x509_certificate(
                (layout.pki / "certs" / f"{name}.crt").read_bytes()
            )
            check_signer_role(cert)


def _payload(jws: bytes) -> bytes:
    return jwt.b64url_decode(jws.split(b".")[1].decode())


async def _has_list(
    client: httpx.AsyncClient, federation: Federation, above: int = 0
) -> dict[str, Any] | None:
    try:
        health = await _proxy_health(client, federation)
    except httpx.HTTPError:
        return None
    version = health.get("federation_list_version")
    return health if isinstance(version, int) and version > above else None
