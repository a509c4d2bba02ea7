"""The ``timkit`` CLI against a running federation."""

from __future__ import annotations

import json
import ssl

import httpx

from tests.support.federation import Federation, timkit


def test_status_json_describes_components_and_services(federation: Federation) -> None:
    status = federation.status()
    assert status["running"] is True
    assert status["ca_cert"].endswith("pki/ca.crt")
    kinds = sorted(c["kind"] for c in status["components"])
    assert kinds == [
        "fhir-directory",
        "fhir-proxy",
        "homeserver",
        "homeserver",
        "idp",
        "mailbox",
        "proxy",
        "proxy",
        "push",
        "pushreceiver",
        "registration",
    ]
    for component in status["components"]:
        assert set(component) >= {"name", "kind", "url", "healthy", "pid"}
        assert component["healthy"] is True
        assert isinstance(component["pid"], int)
    assert status["portal_url"] == next(
        c["url"] for c in status["components"] if c["kind"] == "registration"
    )
    assert status["push_receiver_url"] == next(
        c["url"] for c in status["components"] if c["kind"] == "pushreceiver"
    )
    assert status["demo_admins"].endswith("registration/demo-admins.json")
    domains = {s["domain"] for s in status["services"]}
    assert domains == {"praxis-sonnenschein.tim.test", "klinikum-nord.tim.test"}
    for service in status["services"]:
        assert service["client_url"].startswith("https://")
        assert service["federation_url"].startswith("https://")


def test_client_url_serves_matrix_over_tls_trusted_by_the_local_ca(federation: Federation) -> None:
    url = federation.client_url("klinikum-nord.tim.test")
    response = httpx.get(
        f"{url}/_matrix/client/versions",
        verify=ssl.create_default_context(cafile=federation.ca_cert),
    )
    assert response.status_code == 200
    assert "versions" in response.json()
    wellknown = httpx.get(
        f"{url}/.well-known/matrix/server",
        verify=ssl.create_default_context(cafile=federation.ca_cert),
    )
    assert wellknown.json() == {"m.server": "klinikum-nord.tim.test:443"}


def test_up_again_says_so_and_changes_nothing(federation: Federation) -> None:
    before = federation.pids()
    result = timkit(federation.config, "up")
    assert "already up" in result.stdout
    assert federation.pids() == before


def test_user_add_creates_then_reports_existing(federation: Federation) -> None:
    domain = "praxis-sonnenschein.tim.test"
    first = timkit(federation.config, "user", "add", domain, "carol", "--password", "pw-carol")
    assert json.loads(first.stdout) == {"mxid": f"@carol:{domain}", "created": True}
    again = timkit(federation.config, "user", "add", domain, "carol", "--password", "pw-carol")
    assert json.loads(again.stdout) == {"mxid": f"@carol:{domain}", "created": False}
    assert "exists already" in again.stderr


def test_user_add_for_unknown_domain_names_the_known_ones(federation: Federation) -> None:
    result = timkit(
        federation.config, "user", "add", "nowhere.tim.test", "dave", "--password", "x", check=False
    )
    assert result.returncode == 1
    assert "nowhere.tim.test" in result.stderr
    assert "praxis-sonnenschein.tim.test" in result.stderr
