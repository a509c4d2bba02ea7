"""The static plan (shared components only), service planning and the runtime's config keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from timkit.core.config import load_toml, parse_config
from timkit.core.errors import ConfigError
from timkit.core.fhir import TELEMATIK_ID
from timkit.core.tls import LocalPKI
from timkit.directory.validation import validate
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.homeserver.config import HomeserverConfig
from timkit.idp.cards import load_cards
from timkit.idp.config import IdpConfig
from timkit.proxy.config import ProxyConfig
from timkit.push.config import ApnsApp, FcmApp, PushConfig
from timkit.pushreceiver.config import PushReceiverConfig
from timkit.registration.config import RegistrationConfig
from timkit.runtime.config import MessengerServiceConfig, TimkitConfig, _check_unique
from timkit.runtime.demo import (
    HBA_CARD,
    SPARE_ORGANISATION,
    demo_organisations,
    demo_resources,
    practitioner_entries,
    telematik_id,
)
from timkit.runtime.layout import Layout
from timkit.runtime.plan import (
    SHARED_COMPONENTS,
    Plan,
    ServiceRecord,
    build_plan,
    fhir_proxy_database,
    plan_service,
)
from timkit.runtime.push_chain import APNS_APP, FCM_APP, vapid_public_key


def test_static_plan_holds_the_shared_components_and_the_config(tmp_path: Path) -> None:
    config = TimkitConfig(data_dir=tmp_path)
    plan = build_plan(config)
    assert [c.name for c in plan.components] == [
        "fhir-directory",
        "fhir-proxy",
        "idp",
        "mailbox",
        "pushreceiver",
        "push",
        "registration",
    ]
    assert len(SHARED_COMPONENTS) == len(plan.components)
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again.config == config
    layout = Layout(tmp_path)
    proxy = load_toml(FhirProxyConfig, layout.root / "fhir-proxy" / "fhir-proxy.toml")
    assert proxy.matrix.routes == {}
    assert proxy.matrix.routes_file == layout.names_file


def test_plan_service_writes_both_configs_routing_by_the_names_file(tmp_path: Path) -> None:
    config = TimkitConfig(data_dir=tmp_path)
    layout = Layout(tmp_path)
    record = ServiceRecord(
        domain="apotheke.tim.test",
        organisation="Apotheke",
        port=9001,
        forward_proxy_port=9002,
        homeserver_port=9003,
    )
    components = plan_service(config, layout, LocalPKI(layout.pki), record)
    assert [c.name for c in components] == [
        "proxy@apotheke.tim.test",
        "homeserver@apotheke.tim.test",
    ]
    assert [c.health_url for c in components] == [
        "https://127.0.0.1:9001/health",
        "http://127.0.0.1:9003/health",
    ]
    service_dir = layout.service_dir("apotheke.tim.test")
    proxy = load_toml(ProxyConfig, service_dir / "proxy.toml")
    assert proxy.server_name == "apotheke.tim.test"
    assert proxy.inbound.port == 9001
    assert proxy.upstream.url == "http://127.0.0.1:9003"
    assert proxy.forward.routes == {}
    assert proxy.forward.routes_file == layout.names_file
    assert proxy.forward.port == 9002
    interception = service_dir / "interception" / "ca.crt"
    assert proxy.forward.interception_ca_cert == interception
    assert proxy.federation_list.trust_anchors == (layout.ca_cert,)
    assert proxy.federation_list.token_file == layout.proxies_token
    homeserver = load_toml(HomeserverConfig, service_dir / "homeserver.toml")
    assert homeserver.https_proxy == "http://127.0.0.1:9002"
    assert homeserver.federation_ca == interception  # only its own proxy's interception CA
    assert (homeserver.bind, homeserver.port, homeserver.tls_cert) == ("127.0.0.1", 9003, None)
    # Its pushers reach the Push-Gateway on loopback directly, past Synapse's IP block list.
    assert homeserver.no_proxy_hosts == homeserver.ip_range_whitelist == ("127.0.0.1",)
    assert (layout.pki / "certs" / "apotheke.tim.test.crt").exists()


def test_push_gateway_delivers_every_backend_to_the_receiver_with_keys_made_once(
    tmp_path: Path,
) -> None:
    config = TimkitConfig(data_dir=tmp_path)
    build_plan(config)
    layout = Layout(tmp_path)
    gateway = load_toml(PushConfig, layout.root / "push" / "push.toml")
    receiver = load_toml(PushReceiverConfig, layout.root / "pushreceiver" / "pushreceiver.toml")
    assert gateway.port == 8428
    assert {app.type for app in gateway.apps.values()} == {"webpush", "unifiedpush", "fcm", "apns"}
    # Device URLs may reach exactly the receiver's origin on loopback, not loopback at large.
    assert gateway.outbound.allowed_origins == ("https://127.0.0.1:8429",)
    assert gateway.outbound.allowed_networks == ()
    fcm = gateway.apps[FCM_APP]
    apns = gateway.apps[APNS_APP]
    assert isinstance(fcm, FcmApp)
    assert isinstance(apns, ApnsApp)
    assert fcm.endpoint == receiver.public_url == "https://127.0.0.1:8429"
    assert apns.endpoint == "https://127.0.0.1:8430"
    assert receiver.apns is not None
    assert receiver.fcm is not None
    assert receiver.apns.keys == {apns.key_id: apns.key_file}
    assert receiver.fcm.service_account_files == (fcm.service_account_file,)
    account = json.loads(fcm.service_account_file.read_text())
    assert account["token_uri"] == "https://127.0.0.1:8429/token"
    assert fcm.service_account_file.stat().st_mode & 0o077 == 0
    keys = {path: path.read_bytes() for path in (layout.root / "push" / "keys").iterdir()}
    build_plan(config)  # re-planning keeps the keys
    assert {path: path.read_bytes() for path in keys} == keys
    assert vapid_public_key(layout).startswith("B")  # an uncompressed P-256 point


def test_plan_service_refuses_a_record_without_homeserver_port(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    record = ServiceRecord(
        domain="a.tim.test", organisation="A", port=9001, forward_proxy_port=9002
    )
    with pytest.raises(ValueError, match="homeserver_port"):
        plan_service(TimkitConfig(data_dir=tmp_path), layout, LocalPKI(layout.pki), record)


def test_control_port_defaults_to_8400_and_must_be_unique() -> None:
    assert TimkitConfig().runtime.control_port == 8400
    clash = parse_config(TimkitConfig, {"runtime": {"control_port": 8490}}, source="timkit.toml")
    with pytest.raises(ConfigError, match=r"directory\.port: port 8490 is already used by runtime"):
        _check_unique(clash, source="timkit.toml")
    service = parse_config(
        TimkitConfig,
        {
            "runtime": {"control_port": 9000},
            "messenger_services": [
                {
                    "domain": "a.tim.test",
                    "organisation": "A",
                    "port": 9000,
                    "forward_proxy_port": 9001,
                }
            ],
        },
    )
    with pytest.raises(ConfigError, match=r"messenger_services\.0\.port"):
        _check_unique(service, source="")


def test_rd_idp_and_mailbox_ports_have_defaults_and_must_be_unique() -> None:
    config = TimkitConfig()
    assert (config.idp.port, config.registration.port) == (8470, 8460)
    assert (config.mailbox.smtp_port, config.mailbox.http_port) == (8425, 8426)
    clash = parse_config(TimkitConfig, {"registration": {"port": 8470}}, source="timkit.toml")
    with pytest.raises(ConfigError, match=r"registration\.port: port 8470 is already used by idp"):
        _check_unique(clash, source="timkit.toml")
    service = parse_config(
        TimkitConfig,
        {
            "messenger_services": [
                {"domain": "a.tim.test", "organisation": "A", "port": 8426, "forward_proxy_port": 1}
            ]
        },
    )
    with pytest.raises(ConfigError, match=r"messenger_services\.0\.port.*mailbox\.http_port"):
        _check_unique(service, source="")


def test_idp_cards_kim_directory_and_rd_config_come_from_the_organisations(tmp_path: Path) -> None:
    services = (
        MessengerServiceConfig(
            domain="praxis.tim.test", organisation="Praxis A", port=9001, forward_proxy_port=9002
        ),
        MessengerServiceConfig(
            domain="praxis-2.tim.test", organisation="Praxis A", port=9003, forward_proxy_port=9004
        ),
        MessengerServiceConfig(
            domain="klinik.tim.test", organisation="Klinik B", port=9005, forward_proxy_port=9006
        ),
    )
    config = TimkitConfig(data_dir=tmp_path, messenger_services=services)
    build_plan(config)
    layout = Layout(tmp_path)
    organisations = demo_organisations(services)
    assert [(o.key, o.domains) for o in organisations] == [
        ("praxis", ("praxis.tim.test", "praxis-2.tim.test")),
        ("klinik", ("klinik.tim.test",)),
    ]
    cards = {c.id: c for c in load_cards(tmp_path / "idp" / "cards.yaml")}
    assert set(cards) == {"praxis", "klinik", SPARE_ORGANISATION.key, HBA_CARD["id"]}
    assert cards["praxis"].telematikID == telematik_id(services[0])
    assert cards["praxis"].professionOID == "1.2.276.0.76.4.50"
    assert cards["klinik"].professionOID == "1.2.276.0.76.4.53"
    assert cards[HBA_CARD["id"]].type == "HBA"
    idp = load_toml(IdpConfig, tmp_path / "idp" / "idp.toml")
    rd = load_toml(RegistrationConfig, layout.registration / "registration.toml")
    assert idp.clients[0].client_id == rd.idp.client_id
    assert idp.clients[0].redirect_uris == (rd.public_base() + "/oidc/callback",)
    assert rd.idp.issuer == idp.public_issuer()
    assert rd.kim.smtp.port == config.mailbox.smtp_port
    assert rd.directory.client_secret_file == layout.provider_credentials
    assert rd.provisioning.embedded.token_file == layout.control_token
    assert rd.proxies.token_files == (layout.proxies_token,)
    assert rd.federation.trust_anchors == (layout.ca_cert,)
    kim = json.loads((layout.registration / "kim-directory.json").read_text("utf-8"))
    mails = {e["telematikID"]: e["mail"] for e in kim["entries"]}
    assert mails[telematik_id(services[2])] == ["klinik@kim.tim.test"]


def test_a_legacy_fhir_proxy_home_is_moved_once_and_read_until_then(tmp_path: Path) -> None:
    # before issue 15 the FHIR-Proxy ran as kind `directory`: its state lived in <data>/directory
    config = TimkitConfig(data_dir=tmp_path)
    legacy = tmp_path / "directory"
    legacy.mkdir()
    (legacy / "fhir-proxy.db").write_bytes(b"state")
    (legacy / "directory.toml").write_text("old = true\n")
    assert fhir_proxy_database(config) == f"sqlite:///{legacy / 'fhir-proxy.db'}"
    build_plan(config)
    home = tmp_path / "fhir-proxy"
    assert not legacy.exists()
    assert (home / "fhir-proxy.db").read_bytes() == b"state"
    assert sorted(p.name for p in home.iterdir()) == ["fhir-proxy.db", "fhir-proxy.toml"]
    assert fhir_proxy_database(config) == f"sqlite:///{home / 'fhir-proxy.db'}"


def test_af_10058_the_fhir_proxy_trusts_the_idp_stand_in_which_knows_it_as_a_client(
    tmp_path: Path,
) -> None:
    """The owner sign-in with an HBA works in the local run: the FHIR-Proxy's trusted IDP is
    the IDP stand-in, which has the FHIR-Proxy's ``/signin-gematik-idp-dienst`` registered."""
    config = TimkitConfig(data_dir=tmp_path)
    build_plan(config)
    layout = Layout(tmp_path)
    idp = load_toml(IdpConfig, tmp_path / "idp" / "idp.toml")
    proxy = load_toml(FhirProxyConfig, layout.root / "fhir-proxy" / "fhir-proxy.toml")
    [trusted] = proxy.idps
    [client] = [c for c in idp.clients if c.client_id == trusted.client_id]
    assert trusted.issuer == idp.public_issuer()
    assert (trusted.token_endpoint, trusted.jwks_uri) == (
        idp.public_issuer() + "/token",
        idp.public_issuer() + "/jwks",
    )
    assert client.redirect_uris == (proxy.base_url + "/signin-gematik-idp-dienst",)
    assert trusted.redirect_uri == client.redirect_uris[0]
    assert trusted.ca_file == layout.ca_cert


def test_af_10058_the_hba_holder_has_a_valid_practitioner_entry_in_the_demo_data() -> None:
    services = (
        MessengerServiceConfig(
            domain="praxis.tim.test", organisation="Praxis A", port=9001, forward_proxy_port=9002
        ),
    )
    resources = list(demo_resources(services))
    for resource in resources:
        validate(resource)
    by_id = {(r["resourceType"], r["id"]): r for r in resources}
    [practitioner] = [
        r
        for r in resources
        if r["resourceType"] == "Practitioner"
        and {"system": TELEMATIK_ID, "value": HBA_CARD["telematikID"]} in r["identifier"]
    ]
    [role] = [
        r
        for r in resources
        if r["resourceType"] == "PractitionerRole"
        and r["practitioner"]["reference"] == f"Practitioner/{practitioner['id']}"
    ]
    assert practitioner["name"][0]["family"] == HBA_CARD["family_name"]
    assert "endpoint" not in role
    for reference in (role["organization"]["reference"], role["healthcareService"][0]["reference"]):
        assert tuple(reference.split("/")) in by_id
    assert "organization" not in practitioner_entries(())[1]
