"""The FHIR-Directory's bearer token header checks (timkit.directory.access)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from timkit.core.request_target import UnparsableRequest
from timkit.directory.access import presented_token, token_matches


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
