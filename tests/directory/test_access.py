"""The FHIR-Directory's token file and header checks (timkit.directory.access)."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict

from timkit.core.errors import ConfigError
from timkit.core.request_target import UnparsableRequest
from timkit.directory.access import (
    MIN_TOKEN_LENGTH,
    presented_token,
    read_token_file,
    token_matches,
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


def test_presented_token_reads_one_bearer_header() -> None:
    assert presented_token(CIMultiDict()) is None
    assert presented_token(CIMultiDict({"Authorization": "Bearer abc"})) == "abc"
    assert presented_token(CIMultiDict({"Authorization": "Basic abc"})) is None
    twice = CIMultiDict([("Authorization", "Bearer a"), ("authorization", "Bearer b")])
    with pytest.raises(UnparsableRequest):
        presented_token(twice)


def test_token_matches_exactly() -> None:
    assert token_matches("secret", "secret")
    assert not token_matches("secret ", "secret")
    assert not token_matches(None, "secret")
    assert not token_matches("", "secret")
