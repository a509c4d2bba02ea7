"""The Messenger-Proxy's configuration: what it refuses, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.proxy.stand_ins import proxy_config, proxy_keys
from timkit.core.errors import ConfigError


@pytest.mark.parametrize("version", ["1.3", "v1", "v1.3.0", "latest", ""])
def test_max_matrix_version_must_be_a_matrix_version(tmp_path: Path, version: str) -> None:
    keys = proxy_keys(tmp_path, "praxis.tim.test")
    with pytest.raises(ConfigError, match="max_matrix_version"):
        proxy_config(
            keys,
            "praxis.tim.test",
            "https://127.0.0.1:1",
            "http://127.0.0.1:2",
            inbound={"max_matrix_version": version},
        )


def test_max_matrix_version_defaults_to_v1_3_and_may_be_raised(tmp_path: Path) -> None:
    keys = proxy_keys(tmp_path, "praxis.tim.test")
    urls = ("https://127.0.0.1:1", "http://127.0.0.1:2")
    assert proxy_config(keys, "praxis.tim.test", *urls).inbound.max_matrix_version == "v1.3"
    lifted = proxy_config(keys, "praxis.tim.test", *urls, inbound={"max_matrix_version": "v1.11"})
    assert lifted.inbound.max_matrix_version == "v1.11"


@pytest.mark.parametrize(
    ("clients", "error"),
    [
        ([{"client_id": "a", "secret_sha256": "ab"}], "secret_sha256"),
        ([{"client_id": "a b", "secret_sha256": "0" * 64}], "client_id"),
        ([{"client_id": "a", "secret_sha256": "0" * 64}] * 2, "registered twice"),
        ([{"client_id": "a", "secret_sha256": "0" * 64, "secret": "x"}], "secret"),
    ],
)
def test_af_10057_supported_clients_are_checked_naming_the_key(
    tmp_path: Path, clients: list[dict[str, str]], error: str
) -> None:
    keys = proxy_keys(tmp_path, "praxis.tim.test")
    with pytest.raises(ConfigError, match=error) as refused:
        proxy_config(
            keys,
            "praxis.tim.test",
            "https://127.0.0.1:1",
            "http://127.0.0.1:2",
            inbound={"supported_clients": clients},
        )
    assert "supported_clients" in str(refused.value)
