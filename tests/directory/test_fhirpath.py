"""The fast FHIRPath compiler (:mod:`timkit.directory.fhirpath`) agrees with fhirpathpy.

Every SearchParameter expression of the registry, of every type, is evaluated on every api-vzd
example of its base type (and on a few purpose-built resources that carry what the examples
lack: choice types, duplicates, filtered extensions) with both the compiled extractor and
``fhirpathpy.evaluate(resource, expr, {}, models["r4"])``.

Three differences are fhirpathpy's, not ours, and are normalised before comparing:

* fhirpathpy 2.2 does not treat a resource as an instance of ``Resource``/``DomainResource``,
  so ``Resource.id`` selects nothing; the reference evaluation roots such expressions at the
  resource's own type (``Organization.id``), which is what FHIRPath means;
* fhirpathpy returns decimals as :class:`~decimal.Decimal`, JSON parsing gives ``float``;
* fhirpathpy leaves complex nodes that hold nothing but ``extension`` out of its output (it
  takes them for the ``_x`` shadow of a primitive); they are dropped from ours before the
  comparison and the counts (``(expr).count()``, which fhirpathpy does count) must agree.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models

from timkit.directory.fhirpath import compile_path
from timkit.directory.searchparams import REGISTRY, SearchParam

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "vzd" / "examples"
_EXAMPLES: list[dict[str, Any]] = [
    json.loads(p.read_text("utf-8"))
    for p in sorted(EXAMPLES.glob("*.json"))
    if not p.name.startswith("Bundle-")
]


def _variety() -> list[dict[str, Any]]:
    """Resources carrying what the examples lack."""
    by_id = {r["id"]: r for r in _EXAMPLES}
    organization = copy.deepcopy(by_id["OrganizationExample001"])
    organization["id"] = "variety-org"
    organization["alias"] = ["gematik GmbH", "gematik", "gematik"]  # duplicates of name
    organization["extension"].append(
        {
            "url": "https://gematik.de/fhir/directory/StructureDefinition/OrganizationVisibility",
            "valueString": "not a Coding",
        }
    )
    organization["partOf"] = {"reference": "Organization/OrganizationExample"}
    role = copy.deepcopy(by_id["PractitionerRoleExample"])
    role["id"] = "variety-role"
    role["extension"] = [
        {
            "url": "https://gematik.de/fhir/directory/StructureDefinition/holder-id-ex",
            "valueCode": "dtrust",
        },
        {
            "url": "https://gematik.de/fhir/directory/StructureDefinition/OwnerTelematikIdEx",
            "valueIdentifier": {"system": "https://gematik.de/fhir/sid/telematik-id", "value": "1"},
        },
    ]
    role["period"] = {"start": "2024-01-01", "end": "2024-12-31T10:00:00+01:00"}
    role["telecom"] = [
        {"system": "email", "value": "a@b.de"},
        {"system": "phone", "value": "030 1"},
        {"system": "email", "value": "a@b.de"},
    ]
    role["active"] = False
    practitioner = copy.deepcopy(by_id["TIPractitionerExampleDentist"])
    practitioner["id"] = "variety-practitioner"
    practitioner["qualification"].append(
        {"code": {"coding": [{"code": "x", "display": "Zahnärztin/Zahnarzt"}], "text": "ZA"}}
    )
    practitioner["telecom"] = [{"system": "email", "value": "p@b.de"}]
    practitioner["gender"] = "female"
    practitioner["address"] = [{"city": "Köln", "postalCode": "50667", "use": "work"}]
    return [organization, role, practitioner]


RESOURCES = [*_EXAMPLES, *_variety()]
PARAMS: list[SearchParam] = [p for params in REGISTRY.values() for p in params.values()]


def _reference_expression(param: SearchParam) -> str:
    expression = param.expression
    for root in ("DomainResource.", "Resource."):
        expression = expression.replace(root, f"{param.resource_type}.")
    return expression


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _extension_only(node: Any) -> bool:
    return isinstance(node, dict) and list(node) == ["extension"]


def test_every_registry_expression_compiles_to_the_fast_path() -> None:
    """No SearchParameter falls back to fhirpathpy (30x slower on every indexed write)."""
    slow = [
        f"{p.resource_type}.{p.code}" for p in PARAMS if "_fhirpathpy" in p.extract.__qualname__
    ]
    assert slow == []


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"{p.resource_type}.{p.code}")
def test_fast_extractor_agrees_with_fhirpathpy_on_every_example(param: SearchParam) -> None:
    expression = _reference_expression(param)
    resources = [r for r in RESOURCES if r["resourceType"] == param.resource_type]
    assert resources
    for resource in resources:
        fast = param.extract(resource)
        reference = _plain(fhirpathpy.evaluate(resource, expression, {}, models["r4"]))
        shown = [n for n in fast if not _extension_only(n)]
        assert shown == reference, (resource["id"], param.expression)
        (count,) = fhirpathpy.evaluate(resource, f"({expression}).count()", {}, models["r4"])
        assert len(fast) == count, (resource["id"], param.expression)


def test_examples_exercise_the_custom_parameters() -> None:
    """The comparison above is not vacuous: each api-vzd parameter selects something."""
    selected = {
        f"{p.resource_type}.{p.code}"
        for p in PARAMS
        for r in RESOURCES
        if r["resourceType"] == p.resource_type and p.extract(r)
    }
    assert {
        "Endpoint.address",
        "Endpoint.endpointVisibility",
        "Endpoint.owner-telematik-id",
        "Organization.organizationVisibility",
        "Organization.alias",
        "Organization.type-display",
        "Organization.ncpeh-country",
        "HealthcareService.holder-id",
        "HealthcareService.coverageAreaPostalCode",
        "PractitionerRole.holder-id",
        "PractitionerRole.owner-telematik-id",
        "Practitioner.qualification",
        "Location.near",
        "PractitionerRole.date",
        "PractitionerRole.email",
    } <= selected


def test_union_drops_duplicates_as_fhirpath_does() -> None:
    organization = next(r for r in RESOURCES if r["id"] == "variety-org")
    names = REGISTRY["Organization"]["name"].extract(organization)
    assert names == ["gematik GmbH", "gematik"]


def test_choice_elements_and_of_type() -> None:
    organization = next(r for r in RESOURCES if r["id"] == "variety-org")
    visibility = REGISTRY["Organization"]["organizationVisibility"].extract(organization)
    assert visibility == [
        {
            "code": "hide-versicherte",
            "system": "https://gematik.de/fhir/directory/CodeSystem/OrganizationVisibilityCS",
        }
    ]
    extract = compile_path(
        "Organization.extension.where(url = 'https://gematik.de/fhir/directory/"
        "StructureDefinition/OrganizationVisibility').value.ofType(string)",
        "Organization",
    )
    assert extract(organization) == ["not a Coding"]


def test_a_branch_rooted_at_another_type_selects_nothing() -> None:
    role = {**next(r for r in RESOURCES if r["id"] == "variety-role"), "name": "not a role's"}
    extract = compile_path("HealthcareService.name | PractitionerRole.active", "PractitionerRole")
    assert extract(role) == [False]
    assert REGISTRY["PractitionerRole"]["holder-id"].extract(role) == ["dtrust"]


@pytest.mark.parametrize(
    ("expression", "resource_id", "expected"),
    [
        ("Practitioner.name.given.first()", "TIPractitionerExample001", ["Max"]),
        ("Practitioner.name.given.count()", "TIPractitionerExample001", [2]),
        (
            "Practitioner.identifier.where(system.startsWith('https')).value",
            "TIPractitionerExample001",
            ["1-1.58.00000040", "123456789"],
        ),
        ("Practitioner.identifier[1].value", "TIPractitionerExample001", ["123456789"]),
        (
            "(Organization.extension.value as Coding).code",
            "OrganizationExample001",
            ["hide-versicherte"],
        ),
        ("Organization.name.substring(0, 7)", "OrganizationExample001", ["gematik"]),
        ("Location.address.city.lower()", "PharmacyLocationExample", ["frankfurt am main"]),
        ("Endpoint.address.contains('matrix:')", "MessengerEndpointWithVisibility", [True]),
        (
            "Endpoint.where(status = 'active' and name.exists()).name",
            "KIMEndpointExample",
            ["KIM-Mailadresse"],
        ),
    ],
)
def test_unsupported_syntax_falls_back_to_fhirpathpy(
    expression: str, resource_id: str, expected: list[Any]
) -> None:
    resource = next(r for r in RESOURCES if r["id"] == resource_id)
    extract = compile_path(expression, resource["resourceType"])
    assert "_fhirpathpy" in extract.__qualname__
    assert extract(resource) == expected
    assert extract(resource) == fhirpathpy.evaluate(resource, expression, {}, models["r4"])


@pytest.mark.parametrize(
    "expression",
    [
        "Organization.name",
        "Organization.name | Organization.alias",
        "extension.where(url='x').value",
        "Organization.extension.where( url = 'x' ).value.ofType( Coding )",
        "Organization.type.coding.display",
    ],
)
def test_the_simple_subset_compiles_fast(expression: str) -> None:
    assert "_fhirpathpy" not in compile_path(expression, "Organization").__qualname__
