"""The RD's configuration: strict, and the sample documents every default."""

from __future__ import annotations

from pathlib import Path

import pytest

from timkit.core.config import load_toml, parse_config
from timkit.core.errors import ConfigError
from timkit.registration.config import RegistrationConfig

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "registration.sample.toml"


def test_sample_documents_the_defaults() -> None:
    assert load_toml(RegistrationConfig, SAMPLE) == RegistrationConfig()


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"idp": {"issuerr": "x"}}, r"idp\.issuerr: unknown key"),
        ({"kim": {"smtp": {"port": "25"}}}, r"kim\.smtp\.port: Input should be a valid integer"),
        ({"accounts": {"max_failures": 0}}, r"accounts\.max_failures"),
    ],
)
def test_unknown_or_wrong_keys_are_named(data: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError, match=path):
        parse_config(RegistrationConfig, data)
