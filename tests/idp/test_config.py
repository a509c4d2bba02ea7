"""The IDP's config: the sample documents the defaults; bad values name their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from timkit.core.config import load_toml, parse_config
from timkit.core.errors import ConfigError
from timkit.idp.config import IdpConfig
from timkit.mailbox.config import MailboxConfig

REPO = Path(__file__).resolve().parents[2]


def test_samples_document_the_defaults() -> None:
    sample = load_toml(IdpConfig, REPO / "config" / "idp.sample.toml")
    assert sample.model_copy(update={"clients": ()}) == IdpConfig()
    assert [c.client_id for c in sample.clients] == ["registration-service", "fhir-proxy"]
    assert load_toml(MailboxConfig, REPO / "config" / "mailbox.sample.toml") == MailboxConfig()


def test_issuer_defaults_to_loopback_and_port() -> None:
    assert parse_config(IdpConfig, {"port": 9000}).public_issuer() == "https://127.0.0.1:9000"
    config = parse_config(IdpConfig, {"issuer": "https://idp.tim.test/"})
    assert config.public_issuer() == "https://idp.tim.test"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"issuer": "http://idp.tim.test"}, r"issuer: .*https URL"),
        ({"signing": "RS256"}, r"signing: Input should be 'ES256' or 'BP256R1'"),
        ({"id_token_lifetime": 90000}, r"id_token_lifetime: .*less than or equal to 86400"),
        ({"clients": [{"client_id": "a", "redirect_uris": ["/cb"]}]}, r"clients\.0\.redirect_uris"),
        ({"clients": [{"client_id": "a", "redirect_uris": []}]}, r"clients\.0\.redirect_uris"),
        (
            {"clients": [{"client_id": "a", "redirect_uris": ["https://a/cb"]}] * 2},
            r"clients: .*'a' is registered twice",
        ),
        (
            {"clients": [{"client_id": "a", "redirect_uris": ["https://a/cb"], "secret": "x"}]},
            r"clients\.0\.secret: unknown key",
        ),
    ],
)
def test_bad_values_name_their_key(data: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(IdpConfig, data)
