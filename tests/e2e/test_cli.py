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


def test_user_add_with_another_password_fails_clearly_unless_told_to_reset(
    federation: Federation,
) -> None:
    domain = "praxis-sonnenschein.tim.test"
    timkit(federation.config, "user", "add", domain, "dora", "--password", "pw-one")
    other = timkit(
        federation.config, "user", "add", domain, "dora", "--password", "pw-two", check=False
    )
    assert other.returncode == 1
    assert "another password" in other.stderr
    assert "--reset-password" in other.stderr
    assert other.stdout == ""
    same = timkit(federation.config, "user", "add", domain, "dora", "--password", "pw-one")
    assert json.loads(same.stdout) == {"mxid": f"@dora:{domain}", "created": False}
    reset = timkit(
        federation.config, "user", "add", domain, "dora", "--password", "pw-two", "--reset-password"
    )
    assert json.loads(reset.stdout) == {
        "mxid": f"@dora:{domain}",
        "created": False,
        "password_reset": True,
    }
    now = timkit(federation.config, "user", "add", domain, "dora", "--password", "pw-two")
    assert json.loads(now.stdout)["created"] is False
    assert "same password" in now.stderr


def test_user_list_and_remove(federation: Federation) -> None:
    domain = "klinikum-nord.tim.test"
    timkit(federation.config, "user", "add", domain, "erin", "--password", "pw-erin")
    listed = json.loads(timkit(federation.config, "user", "list", domain, "--json").stdout)
    assert {
        "user_id": f"@erin:{domain}",
        "display_name": "erin",
        "admin": False,
        "deactivated": False,
    } in listed
    table = timkit(federation.config, "user", "list", domain).stdout
    assert any(line.startswith(f"@erin:{domain} ") for line in table.splitlines())
    removed = timkit(federation.config, "user", "remove", domain, "erin")
    assert json.loads(removed.stdout) == {"mxid": f"@erin:{domain}", "removed": True}
    after = json.loads(timkit(federation.config, "user", "list", domain, "--json").stdout)
    assert f"@erin:{domain}" not in [u["user_id"] for u in after]
    everyone = json.loads(
        timkit(federation.config, "user", "list", domain, "--all", "--json").stdout
    )
    assert any(u["user_id"] == f"@erin:{domain}" and u["deactivated"] for u in everyone)
    again = timkit(
        federation.config, "user", "add", domain, "erin", "--password", "pw-erin", check=False
    )
    assert again.returncode == 1
    assert "cannot be used again" in again.stderr
    itself = timkit(federation.config, "user", "remove", domain, "timkit-admin", check=False)
    assert itself.returncode == 1
    missing = timkit(federation.config, "user", "remove", domain, "nobody", check=False)
    assert missing.returncode == 1
    assert "nobody" in missing.stderr


def test_user_add_for_unknown_domain_names_the_known_ones(federation: Federation) -> None:
    result = timkit(
        federation.config, "user", "add", "nowhere.tim.test", "dave", "--password", "x", check=False
    )
    assert result.returncode == 1
    assert "nowhere.tim.test" in result.stderr
    assert "praxis-sonnenschein.tim.test" in result.stderr
