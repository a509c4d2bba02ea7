"""Write-side validation of directory resources against FHIR R4 and the *Directory profiles."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from timkit.core.errors import IssueType, TimkitError
from timkit.core.fhir import DIRECTORY_TYPES
from timkit.directory.api import create_app
from timkit.directory.handlers import Directory
from timkit.directory.validation import (
    _PROFILES,
    TYPE_ALIASES,
    canonical_type,
    validate,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "vzd" / "examples"
ORIGIN = "https://gematik.de/fhir/directory/CodeSystem/Origin"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.json") if not p.name.startswith("Bundle-"))


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
    return data


def _endpoint(**changes: Any) -> dict[str, Any]:
    """The TIM endpoint example with ``changes`` applied (a value of ``None`` drops the key)."""
    resource = _example("Endpoint-OrganizationExample001-Endpoint-TIM")
    for key, value in changes.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return resource


def _error(resource: Any, **kwargs: Any) -> TimkitError:
    with pytest.raises(TimkitError) as caught:
        validate(resource, **kwargs)
    return caught.value


def _diagnostics(error: TimkitError) -> str:
    diagnostics: str = error.to_operation_outcome()["issue"][0]["diagnostics"]
    return diagnostics


def test_there_are_eighteen_examples_of_the_six_types() -> None:
    types = {json.loads(p.read_text("utf-8"))["resourceType"] for p in EXAMPLE_FILES}
    assert len(EXAMPLE_FILES) == 18
    assert types == DIRECTORY_TYPES


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_ml_123880_every_api_vzd_example_passes(path: Path) -> None:
    resource = json.loads(path.read_text("utf-8"))
    before = copy.deepcopy(resource)
    assert validate(resource, expected_type=resource["resourceType"]) == before
    assert resource == before  # not mutated


def test_ml_123880_required_elements_derived_from_profiles() -> None:
    required = {t: profile.required for t, profile in _PROFILES.items()}
    assert required == {
        "Endpoint": ("address", "connectionType", "payloadType", "status", "name"),
        "HealthcareService": ("providedBy",),
        "Location": ("address",),
        "Organization": ("identifier",),
        "Practitioner": ("identifier",),
        "PractitionerRole": ("practitioner",),
    }
    mandatory_slices = {
        t: sorted(s.element_id for s in profile.slices if s.min >= 1)
        for t, profile in _PROFILES.items()
    }
    assert mandatory_slices["Organization"] == [
        "Organization.identifier:TelematikID",
        "Organization.meta.tag:Origin",
    ]
    assert mandatory_slices["Practitioner"] == [
        "Practitioner.identifier:TelematikID",
        "Practitioner.meta.tag:Origin",
    ]
    for resource_type in ("Endpoint", "HealthcareService", "Location", "PractitionerRole"):
        assert mandatory_slices[resource_type] == [f"{resource_type}.meta.tag:Origin"]


def test_ml_123880_alias_is_accepted_and_normalised() -> None:
    resource = _example("Organization-OrganizationExample")
    resource["resourceType"] = "TIOrganization"
    result = validate(resource, expected_type="Organization")
    assert result["resourceType"] == "Organization"
    assert resource["resourceType"] == "TIOrganization"  # the input is left alone
    assert canonical_type("TIPractitioner") == "Practitioner"
    assert TYPE_ALIASES["TIOrganization"] == "Organization"


def test_ml_123880_refuses_other_resource_types() -> None:
    error = _error({"resourceType": "Patient", "id": "p1"})
    assert (error.status, error.errcode) == (400, IssueType.NOT_SUPPORTED)
    assert "Patient" in error.message
    assert "ML-123880" in _diagnostics(error)
    with pytest.raises(TimkitError, match="Bundle"):
        canonical_type("Bundle")


def test_ml_123880_refuses_a_type_other_than_expected() -> None:
    error = _error(_endpoint(), expected_type="Location")
    assert (error.status, error.errcode) == (400, IssueType.INVALID)


@pytest.mark.parametrize("resource", [[], "Endpoint", {"id": "x"}, {"resourceType": 5}])
def test_ml_123880_refuses_what_is_no_resource(resource: Any) -> None:
    error = _error(resource)
    assert (error.status, error.errcode) == (400, IssueType.STRUCTURE)


@pytest.mark.parametrize(
    ("changes", "expression"),
    [
        ({"status": 5}, "Endpoint.status"),
        ({"foo": 1}, "Endpoint.foo"),
        ({"identifier": "x"}, "Endpoint.identifier"),
        ({"identifier": [{"system": 5}]}, "Endpoint.identifier[0].system"),
        ({"id": "not an id"}, "Endpoint.id"),
    ],
)
def test_ml_123880_structural_errors_name_the_element(
    changes: dict[str, Any], expression: str
) -> None:
    error = _error(_endpoint(**changes))
    assert (error.status, error.errcode) == (400, IssueType.STRUCTURE)
    assert error.extra["expression"] == [expression]
    assert error.message.startswith(f"{expression}: ")
    assert error.to_operation_outcome()["issue"][0]["expression"] == [expression]


def test_ml_123880_all_structural_errors_are_reported_together() -> None:
    error = _error(_endpoint(status=5, foo=1, identifier="x"))
    assert sorted(error.extra["expression"]) == [
        "Endpoint.foo",
        "Endpoint.identifier",
        "Endpoint.status",
    ]


def test_ml_123880_missing_required_elements_are_reported_together() -> None:
    error = _error(_endpoint(name=None, address=None))
    assert (error.status, error.errcode) == (422, IssueType.REQUIRED)
    assert error.extra["expression"] == ["Endpoint.address", "Endpoint.name"]
    assert "Endpoint.name is required by profile EndpointDirectory" in error.message
    assert "ML-123880" in _diagnostics(error)


def test_ml_123880_missing_base_r4_elements_are_required_too() -> None:
    error = _error(_endpoint(status=None, connectionType=None, name=None))
    assert (error.status, error.errcode) == (422, IssueType.REQUIRED)
    assert error.extra["expression"] == [
        "Endpoint.connectionType",
        "Endpoint.status",
        "Endpoint.name",
    ]


def test_ml_123880_structural_errors_come_before_missing_elements() -> None:
    error = _error(_endpoint(name=None, status=5))
    assert (error.status, error.extra["expression"]) == (400, ["Endpoint.status"])


def test_ml_123880_origin_tag_is_required() -> None:
    error = _error(_endpoint(meta={"tag": [{"system": "urn:other", "code": "x"}]}))
    assert (error.status, error.errcode) == (422, IssueType.REQUIRED)
    assert error.extra["expression"] == ["Endpoint.meta.tag"]
    assert "Endpoint.meta.tag:Origin" in error.message


def test_ml_123880_origin_tag_code_must_be_in_origin_value_set() -> None:
    error = _error(_endpoint(meta={"tag": [{"system": ORIGIN, "code": "bogus"}]}))
    assert (error.status, error.errcode) == (422, IssueType.VALUE)
    assert "'bogus'" in error.message
    assert error.extra["expression"] == ["Endpoint.meta.tag"]


@pytest.mark.parametrize("code", ["ldap", "owner", "apo"])
def test_ml_123880_origin_codes_of_the_code_system_are_accepted(code: str) -> None:
    # CodeSystem Origin of the packaged api-vzd version (1.1.1) defines ldap, owner and apo.
    validate(_endpoint(meta={"tag": [{"system": ORIGIN, "code": code}]}))


def test_ml_123880_only_one_origin_tag() -> None:
    tags = [{"system": ORIGIN, "code": "ldap"}, {"system": ORIGIN, "code": "owner"}]
    error = _error(_endpoint(meta={"tag": tags}))
    assert (error.status, error.errcode) == (422, IssueType.VALUE)
    assert "at most 1" in error.message


def test_ml_123880_organization_needs_a_telematik_id() -> None:
    resource = _example("Organization-OrganizationExample")
    resource["identifier"] = [{"system": "urn:other", "value": "1"}]
    error = _error(resource)
    assert (error.status, error.errcode) == (422, IssueType.REQUIRED)
    assert "Organization.identifier:TelematikID" in error.message


def test_ml_123880_fdv_tag_must_carry_its_fixed_code() -> None:
    resource = _example("Organization-OrganizationExample")
    resource["meta"]["tag"][1]["code"] = "other"
    error = _error(resource)
    assert (error.status, error.errcode) == (422, IssueType.VALUE)
    assert "Organization.meta.tag:FdV" in error.message


@pytest.mark.parametrize(
    ("raw", "code", "diagnostics"),
    [
        (b"[" * 20_000 + b"]" * 20_000, "too-costly", "nested deeper than 1024 levels"),
        (b'{"resourceType": "Endpoint",}', "structure", "not JSON: trailing comma"),
        (b'{"name": "M\xfcller"}', "structure", "not UTF-8 (invalid byte at position 11)"),
        (b"[]", "structure", "not a JSON object (it is an array)"),
    ],
)
async def test_unusable_bodies_are_operation_outcomes_naming_why(
    directory: Directory, raw: bytes, code: str, diagnostics: str
) -> None:
    """The FHIR store's edge: what ``parse_resource_json`` refuses arrives as an
    OperationOutcome over HTTP (20,000 levels of nesting is named as too deep, not invalid)."""
    token = "validation-token-for-tests-" + "z" * 32
    async with TestClient(TestServer(create_app(directory, token=token, workers=1))) as client:
        response = await client.put(
            "/Endpoint/ep-1",
            data=raw,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        )
        outcome = await response.json(content_type=None)
    assert response.status == 400
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["code"] == code
    assert diagnostics in issue["diagnostics"]
