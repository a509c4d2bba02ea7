"""Synapse configuration rendered from the homeserver's TOML, checked by Synapse itself."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from synapse.config.server import TCPListenerConfig

from timkit.core.tls import LocalPKI
from timkit.homeserver.config import HomeserverConfig
from timkit.homeserver.synapse import SECRETS, database_section, prepare, render, secret_path

DOMAIN = "praxis-sonnenschein.tim.test"


def _config(tmp_path: Path, **overrides: object) -> HomeserverConfig:
    pki = LocalPKI(tmp_path / "pki")
    cert = pki.ensure_server_cert(DOMAIN, [DOMAIN, "127.0.0.1"])
    values: dict[str, object] = {
        "server_name": DOMAIN,
        "port": 8481,
        "public_baseurl": "https://127.0.0.1:8481/",
        "data_dir": tmp_path / "synapse",
        "tls_cert": cert.cert,
        "tls_key": cert.key,
        "federation_ca": pki.ca_cert_path,
        "https_proxy": "http://127.0.0.1:8491",
    }
    values.update(overrides)
    return HomeserverConfig.model_validate(values)


def test_generated_config_is_accepted_by_synapse(tmp_path: Path) -> None:
    from synapse.config.homeserver import HomeServerConfig

    config = _config(tmp_path)
    homeserver_yaml = prepare(config)
    synapse_config = HomeServerConfig.load_config("timkit test", ["-c", str(homeserver_yaml)])
    assert synapse_config.server.server_name == DOMAIN
    assert synapse_config.server.serve_server_wellknown is True
    assert synapse_config.server.proxy_config is not None
    assert synapse_config.server.proxy_config.https_proxy == "http://127.0.0.1:8491"
    assert (
        synapse_config.registration.registration_shared_secret
        == secret_path(config.data_dir, "registration_shared_secret").read_text()
    )
    listener = synapse_config.server.listeners[0]
    assert isinstance(listener, TCPListenerConfig)
    assert listener.is_tls()
    assert listener.port == 8481


def test_af_10057_clients_discover_the_homeserver_at_well_known_matrix_client(
    tmp_path: Path,
) -> None:
    """Synapse serves /.well-known/matrix/client naming its public_baseurl (the proxy)."""
    from synapse.config.homeserver import HomeServerConfig

    homeserver_yaml = prepare(_config(tmp_path))
    synapse_config = HomeServerConfig.load_config("timkit test", ["-c", str(homeserver_yaml)])
    assert synapse_config.server.serve_client_wellknown is True
    assert synapse_config.server.public_baseurl == "https://127.0.0.1:8481/"


def test_the_push_gateway_host_bypasses_the_forward_proxy_and_the_ip_block_list(
    tmp_path: Path,
) -> None:
    from synapse.config.homeserver import HomeServerConfig

    config = _config(tmp_path, no_proxy_hosts=("127.0.0.1",), ip_range_whitelist=("127.0.0.1",))
    synapse_config = HomeServerConfig.load_config("timkit test", ["-c", str(prepare(config))])
    proxy = synapse_config.server.proxy_config
    assert proxy is not None
    assert proxy.no_proxy_hosts == ["127.0.0.1"]
    assert "127.0.0.1" in synapse_config.server.ip_range_allowlist
    assert "127.0.0.1" in synapse_config.server.ip_range_blocklist  # still blocked otherwise
    assert "ip_range_whitelist" not in render(_config(tmp_path))


def test_federation_uses_the_local_ca_and_no_key_servers(tmp_path: Path) -> None:
    config = _config(tmp_path)
    rendered = render(config)
    assert rendered["federation_custom_ca_list"] == [str(config.federation_ca)]
    assert rendered["trusted_key_servers"] == []
    assert rendered["no_proxy_hosts"] == []
    assert rendered["listeners"][0]["resources"][0]["names"] == ["client", "federation"]
    assert "rc_message" not in rendered
    assert render(_config(tmp_path, relaxed_rate_limits=True))["rc_message"]["per_second"] == 1000


def test_secrets_and_signing_key_are_created_once_and_private(tmp_path: Path) -> None:
    config = _config(tmp_path)
    prepare(config)
    first = {name: secret_path(config.data_dir, name).read_text() for name in SECRETS}
    key = (config.data_dir / "signing.key").read_text()
    assert key.startswith("ed25519 a_")
    prepare(config)
    assert {name: secret_path(config.data_dir, name).read_text() for name in SECRETS} == first
    assert (config.data_dir / "signing.key").read_text() == key
    for name in SECRETS:
        assert stat.S_IMODE(secret_path(config.data_dir, name).stat().st_mode) == 0o600
    log_config = yaml.safe_load((config.data_dir / "log.yaml").read_text())
    assert log_config["handlers"]["console"]["stream"] == "ext://sys.stderr"


def test_postgres_dsn_becomes_psycopg2_arguments(tmp_path: Path) -> None:
    section = database_section(
        "postgresql://syn%40pse:p%2Fw@db.example.org:5433/synapse_a", tmp_path
    )
    assert section == {
        "name": "psycopg2",
        "args": {
            "database": "synapse_a",
            "host": "db.example.org",
            "port": 5433,
            "user": "syn@pse",
            "password": "p/w",
            "cp_min": 1,
            "cp_max": 10,
        },
    }
    assert database_section("sqlite", tmp_path)["args"]["database"] == str(
        tmp_path / "homeserver.db"
    )


@pytest.mark.parametrize(
    "name", ["localhost:8481", "Praxis.tim.test", "single", "a..b.test", "-a.test"]
)
def test_server_names_must_be_plain_lowercase_domains(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValidationError, match="server_name"):
        _config(tmp_path, server_name=name)


def test_tim_11_defaults_reach_synapse_room_version_user_directory_and_media(
    tmp_path: Path,
) -> None:
    """The approval suite accepts room versions 1 to 10 only, finds every local user (07.17,
    ML-123896) but no remote one (09.18), and fetches media over the v1.3 API (10.16)."""
    from synapse.config.homeserver import HomeServerConfig

    homeserver_yaml = prepare(_config(tmp_path))
    synapse_config = HomeServerConfig.load_config("timkit test", ["-c", str(homeserver_yaml)])
    assert synapse_config.server.default_room_version.identifier == "10"
    assert synapse_config.userdirectory.user_directory_search_all_users is True
    assert synapse_config.userdirectory.user_directory_exclude_remote_users is True
    assert synapse_config.media.enable_authenticated_media is False


def test_room_version_and_media_are_configurable(tmp_path: Path) -> None:
    from synapse.config.homeserver import HomeServerConfig

    config = _config(
        tmp_path, default_room_version="12", authenticated_media=True, search_all_users=False
    )
    synapse_config = HomeServerConfig.load_config("timkit test", ["-c", str(prepare(config))])
    assert synapse_config.server.default_room_version.identifier == "12"
    assert synapse_config.media.enable_authenticated_media is True
    assert synapse_config.userdirectory.user_directory_search_all_users is False


@pytest.mark.parametrize("version", ["0", "13", "10.1", "org.matrix.msc2176", ""])
def test_an_unknown_room_version_is_refused_naming_the_key(tmp_path: Path, version: str) -> None:
    with pytest.raises(ValidationError, match="default_room_version"):
        _config(tmp_path, default_room_version=version)
