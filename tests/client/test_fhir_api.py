"""FHIR errors become typed errors with the rule split off; MXIDs in both notations."""

from __future__ import annotations

import httpx
import pytest

from timkit.client.fhir_api import (
    error_of,
    mxid_uri,
    person_name,
    resources_of,
    split_requirement,
    user_id,
)
from timkit.core.errors import IssueType, TimkitError


def test_the_requirement_is_split_off_the_diagnostics() -> None:
    assert split_requirement("X does not belong - see ML-123874") == (
        "X does not belong",
        "ML-123874",
    )
    assert split_requirement("see the manual") == ("see the manual", None)


def test_an_operation_outcome_becomes_the_error_with_status_code_and_requirement() -> None:
    refused = TimkitError(403, IssueType.FORBIDDEN, "not yours", requirement="ML-123874")
    error = error_of(httpx.Response(403, json=refused.to_operation_outcome()), "PUT /owner/X")
    assert (error.status, error.errcode, error.message, error.requirement) == (
        403,
        "forbidden",
        "not yours",
        "ML-123874",
    )


def test_an_oauth_error_and_an_unreadable_answer_become_errors_too() -> None:
    oauth = TimkitError(401, "invalid_token", "expired", requirement="ML-123873").to_oauth()
    error = error_of(httpx.Response(401, json=oauth), "/signin")
    assert (error.status, error.errcode, error.requirement) == (401, "invalid_token", "ML-123873")
    html = error_of(httpx.Response(502, text="<html>bad gateway</html>"), "GET /search/X")
    assert (html.status, html.message) == (502, "GET /search/X answered 502")


def test_a_long_server_message_is_cut() -> None:
    body = {"resourceType": "OperationOutcome", "issue": [{"code": "x", "diagnostics": "a" * 9999}]}
    assert len(error_of(httpx.Response(400, json=body), "x").message) == 500


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("@alice:Example.org", "matrix:u/alice:example.org"),
        ("matrix:u/alice:example.org", "matrix:u/alice:example.org"),
        (" matrix:u/alice%2Fx:example.org ", "matrix:u/alice%2Fx:example.org"),
    ],
)
def test_mxids_in_either_notation_become_endpoint_addresses(given: str, address: str) -> None:
    assert mxid_uri(given) == address


@pytest.mark.parametrize(
    "bad", ["alice:example.org", "@alice", "matrix:r/room:example.org", "https://example.org"]
)
def test_what_is_no_user_id_is_a_400(bad: str) -> None:
    with pytest.raises(TimkitError) as refused:
        mxid_uri(bad)
    assert refused.value.status == 400
    assert user_id(bad) is None


def test_bundle_helpers_read_resources_and_names() -> None:
    bundle = {
        "entry": [
            {"resource": {"resourceType": "Endpoint", "id": "e1"}},
            {"resource": {"resourceType": "Endpoint"}},
            {"resource": "junk"},
            {"resource": {"resourceType": "Practitioner", "id": "p1"}},
        ]
    }
    assert [r["id"] for r in resources_of(bundle, "Endpoint")] == ["e1"]
    assert person_name({"name": [{"given": ["Clara"], "family": "S", "prefix": ["Dr."]}]}) == (
        "Dr. Clara S"
    )
    assert person_name({"name": [{"text": " Dr. C "}]}) == "Dr. C"
    assert person_name({}) is None
