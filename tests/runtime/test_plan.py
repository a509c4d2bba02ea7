"""The static plan (shared components only), service planning and the runtime's config keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from timkit.core.config import load_toml, parse_config
from timkit.core.errors import ConfigError
from timkit.core.tls import LocalPKI
from timkit.directory.fhirproxy.config import FhirProxyConfig
from timkit.homeserver.config import HomeserverConfig
from timkit.proxy.config import ProxyConfig
from timkit.runtime.config import TimkitConfig, _check_unique
from timkit.runtime.layout import Layout
from timkit.runtime.plan import SHARED_COMPONENTS, Plan, ServiceRecord, build_plan, plan_service


def test_static_plan_holds_the_shared_components_and_the_config(tmp_path: Path) -> None:
    config = TimkitConfig(data_dir=tmp_path)
    plan = build_plan(config)
    assert [c.name for c in plan.components] == ["fhir-directory", "directory"]
    assert len(SHARED_COMPONENTS) == len(plan.components)
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again.config == config
    layout = Layout(tmp_path)
    proxy = load_toml(FhirProxyConfig, layout.root / "directory" / "directory.toml")
    assert proxy.matrix.routes == {}
    assert proxy.matrix.routes_file == layout.names_file


def test_plan_service_writes_both_configs_routing_by_the_names_file(tmp_path: Path) -> None:
    config = TimkitConfig(data_dir=tmp_path)
    layout = Layout(tmp_path)
    record = ServiceRecord(
        domain="apotheke.tim.test", organisation="Apotheke", port=9001, forward_proxy_port=9002
    )
    components = plan_service(config, layout, LocalPKI(layout.pki), record)
    assert [c.name for c in components] == [
        "proxy@apotheke.tim.test",
        "homeserver@apotheke.tim.test",
    ]
    assert [c.health_url for c in components] == [
        "http://127.0.0.1:9002/health",
        "https://127.0.0.1:9001/health",
    ]
    service_dir = layout.service_dir("apotheke.tim.test")
    proxy = load_toml(ProxyConfig, service_dir / "proxy.toml")
    assert proxy.forward.routes == {}
    assert proxy.forward.routes_file == layout.names_file
    assert proxy.forward.port == 9002
    homeserver = load_toml(HomeserverConfig, service_dir / "homeserver.toml")
    assert homeserver.https_proxy == "http://127.0.0.1:9002"
    assert (layout.pki / "certs" / "apotheke.tim.test.crt").exists()


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
