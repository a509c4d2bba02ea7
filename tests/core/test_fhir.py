"""The shared FHIR vocabulary (timkit.core.fhir): the FHIR-Directory's token file, bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

from timkit.core.errors import ConfigError, TimkitError
from timkit.core.fhir import (
    MIN_TOKEN_LENGTH,
    PROFILE,
    RESOURCE_TYPES,
    authorization,
    parse_resource_json,
    read_token_file,
)


def test_a_missing_token_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="upstream_token_file"):
        read_token_file(tmp_path / "absent", "upstream_token_file")


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("a" * (MIN_TOKEN_LENGTH - 1) + "\n")
    with pytest.raises(ConfigError, match="at least 32"):
        read_token_file(path, "token_file")
    path.write_text("a" * MIN_TOKEN_LENGTH + "\n")
    assert read_token_file(path, "token_file") == "a" * MIN_TOKEN_LENGTH


def test_authorization_is_one_bearer_header() -> None:
    assert authorization("t" * 40) == {"Authorization": "Bearer " + "t" * 40}


def test_parse_resource_json_gives_the_object_or_a_structure_error() -> None:
    assert parse_resource_json(b'{"resourceType": "Endpoint"}') == {"resourceType": "Endpoint"}
    with pytest.raises(TimkitError) as refused:
        parse_resource_json(b"[]")
    assert refused.value.status == 400
    assert refused.value.errcode == "structure"


def test_every_directory_type_has_a_gematik_profile() -> None:
    assert len(set(RESOURCE_TYPES)) == 6
    assert PROFILE.format("Endpoint") == (
        "https://gematik.de/fhir/directory/StructureDefinition/EndpointDirectory"
    )
