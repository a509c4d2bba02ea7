"""Strict config loading: every failure names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from timkit.core.config import dump_toml, load_toml
from timkit.core.errors import ConfigError
from timkit.runtime.config import DEMO_SERVICES, TimkitConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def _service(
    domain: str = "a.tim.test", port: object = 8481, proxy: object = 8491, extra: str = ""
) -> str:
    """One ``[[messenger_services]]`` table; ``port``/``proxy`` are written as TOML literals."""
    return (
        f'[[messenger_services]]\ndomain = "{domain}"\norganisation = "Org"\n'
        f"port = {port}\nforward_proxy_port = {proxy}\n{extra}"
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "timkit.toml"
    path.write_text(text, "utf-8")
    return path


def test_no_file_means_defaults_with_two_demo_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.messenger_services == DEMO_SERVICES
    assert config.data_dir == tmp_path / "var"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "[runtime]\nstartup_timout = 5\n")
    with pytest.raises(ConfigError, match=r"runtime\.startup_timout: unknown key") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_wrong_type_is_named_and_not_coerced(tmp_path: Path) -> None:
    path = _write(tmp_path, _service(port='"8481"'))
    with pytest.raises(
        ConfigError, match=r"messenger_services\.0\.port: Input should be a valid integer"
    ):
        load_config(path)


def test_server_name_with_port_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, _service(domain="localhost:8481"))
    with pytest.raises(
        ConfigError, match=r"messenger_services\.0\.domain: .*must not carry a port"
    ):
        load_config(path)


def test_invalid_database_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, _service(extra='database = "mysql://x/y"\n'))
    with pytest.raises(ConfigError, match=r"messenger_services\.0\.database: .*postgresql://"):
        load_config(path)


def test_duplicate_port_names_both_keys(tmp_path: Path) -> None:
    text = _service("a.tim.test", 9000, 9001) + _service("b.tim.test", 9002, 9000)
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert "messenger_services.1.forward_proxy_port" in str(err.value)
    assert "messenger_services.0.port" in str(err.value)


def test_duplicate_domain_is_named(tmp_path: Path) -> None:
    text = _service("a.tim.test", 1, 2) + _service("a.tim.test", 3, 4)
    with pytest.raises(ConfigError, match=r"messenger_services\.1\.domain: domain 'a\.tim\.test'"):
        load_config(_write(tmp_path, text))


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "data_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_relative_data_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = _write(tmp_path / "etc", 'data_dir = "../state"\n')
    assert load_config(path).data_dir == tmp_path / "state"


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    config = TimkitConfig(data_dir=Path("/srv/timkit"))
    dump_toml(config, tmp_path / "out.toml")
    assert load_toml(TimkitConfig, tmp_path / "out.toml") == config


@pytest.mark.parametrize(
    "sample", sorted((REPO / "config").glob("*.sample.toml")), ids=lambda p: p.name
)
def test_every_sample_config_loads(sample: Path) -> None:
    from timkit.directory.config import DirectoryConfig
    from timkit.fhirproxy.config import FhirProxyConfig
    from timkit.homeserver.config import HomeserverConfig
    from timkit.idp.config import IdpConfig
    from timkit.mailbox.config import MailboxConfig
    from timkit.proxy.config import ProxyConfig
    from timkit.push.config import PushConfig
    from timkit.pushreceiver.config import PushReceiverConfig
    from timkit.registration.config import RegistrationConfig

    models: dict[str, type[BaseModel]] = {
        "timkit": TimkitConfig,
        "proxy": ProxyConfig,
        "homeserver": HomeserverConfig,
        "directory": DirectoryConfig,
        "fhir-proxy": FhirProxyConfig,
        "idp": IdpConfig,
        "mailbox": MailboxConfig,
        "push": PushConfig,
        "pushreceiver": PushReceiverConfig,
        "registration": RegistrationConfig,
    }
    model = models[sample.name.split(".")[0]]
    load_toml(model, sample)


def test_timkit_sample_documents_the_defaults() -> None:
    sample = load_toml(TimkitConfig, REPO / "config" / "timkit.sample.toml")
    assert sample == TimkitConfig()
