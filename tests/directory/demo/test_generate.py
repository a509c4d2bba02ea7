"""Synthetic directory data: count, determinism, references, identifiers and validity."""

from __future__ import annotations

import collections
import fnmatch
import hashlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole

from timkit.directory.demo import generate as generate_module
from timkit.directory.demo.generate import Shape, generate
from timkit.directory.validation import validate

ORIGIN = "https://gematik.de/fhir/directory/CodeSystem/Origin"
TELEMATIK_ID = "https://gematik.de/fhir/sid/telematik-id"
PROFILE = "https://gematik.de/fhir/directory/StructureDefinition/{}Directory"
MXID_URI = re.compile(r"^matrix:u/[a-z0-9._=-]+:[a-z0-9.-]+$")
MODELS: dict[str, type[FHIRResourceModel]] = {
    "Organization": Organization,
    "Practitioner": Practitioner,
    "PractitionerRole": PractitionerRole,
    "HealthcareService": HealthcareService,
    "Location": Location,
    "Endpoint": Endpoint,
}
ORGANIZATION_UNIT = ["Organization", "Location", "Endpoint", "HealthcareService"]
PRACTITIONER_UNIT = ["Practitioner", "Location", "Endpoint", "PractitionerRole"]
ID_PATTERNS = {
    "Organization": r"org-\d{6}",
    "Location": r"loc-(pract-)?\d{6}",
    "Endpoint": r"ep-(org|pract)-\d{6}",
    "HealthcareService": r"hs-\d{6}",
    "Practitioner": r"pract-\d{6}",
    "PractitionerRole": r"role-\d{6}",
}
# Organisation type → professions of the practitioners it employs (OID suffixes).
STAFF = {
    "50": {"30"},
    "51": {"31"},
    "52": {"46", "47"},
    "53": {"30", "232", "234", "32"},
    "54": {"32"},
    "245": {"232", "233", "234"},
    "278": {"274"},
    "279": {"275"},
    "280": {"276"},
}


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference":
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _containers(node: Any) -> Iterator[Any]:
    if isinstance(node, dict | list):
        yield node
        for item in node.values() if isinstance(node, dict) else node:
            yield from _containers(item)


def _code(resource: dict[str, Any], *path: str | int) -> str:
    node: Any = resource
    for step in path:
        node = node[step]
    code: str = node["code"]
    return code.rsplit(".", 1)[-1]


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    return list(generate(400, 600, seed=7))


@pytest.fixture(scope="module")
def by_reference(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['resourceType']}/{r['id']}": r for r in resources}


def test_output_for_a_fixed_seed_is_pinned_byte_for_byte() -> None:
    # pinned before the generator became a package with data files (issue 15): the same seed
    # must keep giving the same resources, in the same order, with the same key order
    digest = hashlib.sha256()
    for resource in generate(300, 400, seed=15):
        digest.update(orjson.dumps(resource) + b"\n")
    assert digest.hexdigest() == (
        "40a394ca0bbc660201735bbd1db7e21a6433a5598ca3874d0e1712b6c940e7d0"
    )


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0), (3, 7), (13, 2), (1, 1)])
def test_shape_total_is_the_number_of_resources(shape: tuple[int, int]) -> None:
    organizations, practitioners = shape
    produced = list(generate(organizations, practitioners, seed=1))
    assert len(produced) == Shape(organizations, practitioners).total()
    kinds = collections.Counter(r["resourceType"] for r in produced)
    assert kinds["Organization"] == kinds["HealthcareService"] == organizations
    assert kinds["Practitioner"] == kinds["PractitionerRole"] == practitioners
    assert kinds["Location"] == kinds["Endpoint"] == organizations + practitioners


def test_negative_counts_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="negative"):
        generate(-1, 3)
    with pytest.raises(ValueError, match="negative"):
        Shape(2, -1)


def test_same_seed_same_output_other_seed_other_output() -> None:
    first = list(generate(30, 40, seed=3))
    assert first == list(generate(30, 40, seed=3))
    other = list(generate(30, 40, seed=4))
    assert first != other
    assert [r["id"] for r in first] == [r["id"] for r in other]  # ids depend on the shape only


def test_output_does_not_depend_on_global_random_state() -> None:
    import random

    random.seed(1)
    first = list(generate(5, 5, seed=9))
    random.seed(2)
    assert first == list(generate(5, 5, seed=9))


def test_units_come_in_dependency_order_and_ids_follow_the_scheme(
    resources: list[dict[str, Any]],
) -> None:
    units = [resources[i : i + 4] for i in range(0, len(resources), 4)]
    for unit in units:
        types = [r["resourceType"] for r in unit]
        assert types in (ORGANIZATION_UNIT, PRACTITIONER_UNIT)
        numbers = {r["id"][-6:] for r in unit}
        assert len(numbers) == 1, unit
        for resource in unit:
            assert re.fullmatch(ID_PATTERNS[resource["resourceType"]], resource["id"])
    # interleaved in proportion (400:600), an organisation first
    assert units[0][0]["resourceType"] == "Organization"
    first_fifty = collections.Counter(unit[0]["resourceType"] for unit in units[:50])
    assert first_fifty == {"Organization": 20, "Practitioner": 30}


def test_every_reference_points_at_a_resource_yielded_before(
    resources: list[dict[str, Any]],
) -> None:
    seen: set[str] = set()
    for resource in resources:
        for reference in _references(resource):
            assert reference in seen, f"{resource['id']} → {reference}"
        seen.add(f"{resource['resourceType']}/{resource['id']}")
    assert len(seen) == len(resources)  # ids are unique


def test_units_reference_each_other(by_reference: dict[str, dict[str, Any]]) -> None:
    service = by_reference["HealthcareService/hs-000001"]
    assert service["providedBy"] == {"reference": "Organization/org-000001"}
    assert service["location"] == [{"reference": "Location/loc-000001"}]
    assert service["endpoint"] == [{"reference": "Endpoint/ep-org-000001"}]
    role = by_reference["PractitionerRole/role-000001"]
    assert role["practitioner"] == {"reference": "Practitioner/pract-000001"}
    assert role["location"] == [{"reference": "Location/loc-pract-000001"}]
    assert role["endpoint"] == [{"reference": "Endpoint/ep-pract-000001"}]


def test_some_roles_belong_to_an_organisation_of_a_fitting_kind(
    resources: list[dict[str, Any]], by_reference: dict[str, dict[str, Any]]
) -> None:
    roles = [r for r in resources if r["resourceType"] == "PractitionerRole"]
    employed = [r for r in roles if "organization" in r]
    assert 0.45 < len(employed) / len(roles) < 0.75
    for role in employed:
        organization = by_reference[role["organization"]["reference"]]
        practitioner = by_reference[role["practitioner"]["reference"]]
        organization_type = _code(organization, "type", 0, "coding", 0)
        profession = _code(practitioner, "qualification", 0, "code", "coding", 0)
        assert profession in STAFF[organization_type], (organization["name"], profession)
        number = organization["id"].removeprefix("org-")
        assert role["healthcareService"] == [{"reference": f"HealthcareService/hs-{number}"}]
        endpoint = by_reference[role["endpoint"][0]["reference"]]
        organization_endpoint = by_reference[f"Endpoint/ep-org-{number}"]
        domain = organization_endpoint["address"].rsplit(":", 1)[1]
        assert endpoint["address"].endswith(f":{domain}")  # the organisation's homeserver


def test_without_organisations_no_role_has_one() -> None:
    roles = [r for r in generate(0, 50, seed=2) if r["resourceType"] == "PractitionerRole"]
    assert roles
    assert all("organization" not in r and "healthcareService" not in r for r in roles)


def test_telematik_ids_are_unique_and_shaped_by_card_issuer(
    resources: list[dict[str, Any]], by_reference: dict[str, dict[str, Any]]
) -> None:
    owners = [r for r in resources if r["resourceType"] in ("Organization", "Practitioner")]
    ids = []
    for resource in owners:
        assert resource["identifier"][0]["system"] == TELEMATIK_ID
        ids.append(resource["identifier"][0]["value"])
    assert len(set(ids)) == len(ids)
    for resource in owners:
        value = resource["identifier"][0]["value"]
        if resource["resourceType"] == "Practitioner":
            profession = _code(resource, "qualification", 0, "code", "coding", 0)
            expected = {
                "30": r"1-1\.\d\d\.\d{8}",
                "31": r"2-1\.\d\d\.\d{8}",
                "32": r"3-\d\d\.3\.\d{8}",
            }
        else:
            profession = _code(resource, "type", 0, "coding", 0)
            expected = {"50": r"1-20\d{10}", "51": r"2-2\.\d\d\.\d{8}", "53": r"5-2-26\d{8}"}
            expected["54"] = r"3-\d\d\.2\.\d{8}\.\d\d\.\d{3}"
        if profession in expected:
            assert re.fullmatch(expected[profession], value), (profession, value)
    for resource in resources:  # a HealthcareService carries its organisation's TelematikID
        if resource["resourceType"] == "HealthcareService":
            organization = by_reference[resource["providedBy"]["reference"]]
            assert resource["identifier"] == organization["identifier"]


def test_telematik_ids_stay_unique_beyond_eight_digit_serials() -> None:
    serials = generate_module._Serials.for_count(10**8 + 5, generate_module._Draw(0))
    assert serials.digits == 9
    sample = {serials(i) for i in range(0, 10**8 + 5, 997)}
    assert len(sample) == len(range(0, 10**8 + 5, 997))


def test_endpoints_are_active_tim_endpoints_with_matrix_uris(
    resources: list[dict[str, Any]],
) -> None:
    endpoints = [r for r in resources if r["resourceType"] == "Endpoint"]
    addresses = [e["address"] for e in endpoints]
    assert len(set(addresses)) == len(addresses)
    for endpoint in endpoints:
        assert MXID_URI.match(endpoint["address"]), endpoint["address"]
        assert endpoint["status"] == "active"
        assert endpoint["connectionType"]["code"] == "tim"
        assert endpoint["connectionType"]["system"].endswith("EndpointDirectoryConnectionType")
        coding = endpoint["payloadType"][0]["coding"][0]
        assert (coding["code"], coding["display"]) == ("tim-chat", "TI-Messenger chat")
        assert coding["system"].endswith("EndpointDirectoryPayloadType")
        assert endpoint["name"]
        assert endpoint["meta"]["tag"] == [{"system": ORIGIN, "code": "owner"}]


def test_meta_names_profile_and_origin(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        resource_type = resource["resourceType"]
        assert resource["meta"]["profile"] == [PROFILE.format(resource_type)]
        origin = "owner" if resource_type == "Endpoint" else "ldap"
        assert resource["meta"]["tag"] == [{"system": ORIGIN, "code": origin}]


def test_resources_are_valid_r4_and_meet_the_directory_profiles() -> None:
    sample = list(generate(25, 25, seed=11))  # 200 resources, every kind
    spread = list(generate(500, 500, seed=12))[::40]  # 100 more from further in
    for resource in [*sample, *spread]:
        MODELS[resource["resourceType"]].model_validate(resource)
        assert validate(resource) == resource


def test_yielded_resources_share_no_mutable_objects() -> None:
    produced = list(generate(20, 30, seed=5))  # kept alive: ids of containers stay distinct
    owners: dict[int, str] = {}
    for resource in produced:
        for container in _containers(resource):
            assert id(container) not in owners, (resource["id"], owners.get(id(container)))
            owners[id(container)] = resource["id"]
    produced[0]["meta"]["tag"].append({"code": "mutated"})
    produced[0]["address"][0]["line"].append("mutated")
    assert list(generate(20, 30, seed=5))[4:] == produced[4:]


def test_data_is_german_and_realistic() -> None:
    produced = list(generate(3000, 3000, seed=21))
    organizations = [r for r in produced if r["resourceType"] == "Organization"]
    practitioners = [r for r in produced if r["resourceType"] == "Practitioner"]
    locations = [r for r in produced if r["resourceType"] == "Location"]
    for group in (organizations, practitioners):
        inactive = sum(not r["active"] for r in group) / len(group)
        assert 0.01 < inactive < 0.035
    cities = collections.Counter(r["address"]["city"] for r in locations)
    assert cities.most_common(3)[0][0] == "Berlin"
    assert len(cities) > 80
    families = {r["name"][0]["family"] for r in practitioners}
    assert {"Müller", "Schäfer", "Weiß", "Groß", "Köhler"} <= families
    assert any(r["name"][0].get("prefix") == ["Dr. med."] for r in practitioners)
    states = {"Berlin", "Bayern", "Nordrhein-Westfalen", "Hessen", "Sachsen", "Thüringen"}
    assert states <= {r["address"]["state"] for r in locations}


def test_addresses_match_their_city() -> None:
    cities = {city.name: city for city in generate_module.CITIES}
    for resource in generate(200, 200, seed=8):
        if resource["resourceType"] != "Location":
            continue
        address, position = resource["address"], resource["position"]
        city = cities[address["city"]]
        assert address["state"] == city.state
        assert address["country"] == "DE"
        code = address["postalCode"]
        assert re.fullmatch(r"\d{5}", code)
        assert city.first_postal_code <= int(code) <= city.last_postal_code
        assert abs(position["latitude"] - city.latitude) < 0.2
        assert abs(position["longitude"] - city.longitude) < 0.3
        assert address["text"] == f"{address['line'][0]}, {code} {city.name}, {city.state}, DE"


def test_organisation_type_fits_its_name() -> None:
    for resource in generate(1500, 0, seed=13):
        if resource["resourceType"] != "Organization":
            continue
        name, kind = resource["name"], _code(resource, "type", 0, "coding", 0)
        if "Apotheke" in name:
            assert kind == "54", name
        if name.startswith(("Zahnarztpraxis", "Zahnärzte")):
            assert kind == "51", name
        if name.startswith(("Klinikum", "Universitätsklinikum", "Städtisches")):
            assert kind == "53", name
        if kind == "54":
            assert "Apotheke" in name, name
        if kind == "53":
            assert re.search("(?i)klinik|krankenhaus|hospital", name), name


def test_reference_lists_are_large_and_distinct() -> None:
    lists = {
        "FAMILY_NAMES": (generate_module.FAMILY_NAMES, 150),
        "given names": (generate_module.FEMALE_GIVEN_NAMES + generate_module.MALE_GIVEN_NAMES, 100),
        "STREETS": (generate_module.STREETS, 40),
        "CITIES": (tuple(c.name for c in generate_module.CITIES), 100),
    }
    for name, (items, minimum) in lists.items():
        assert len(items) >= minimum, name
        assert len(set(items)) == len(items), name


def test_the_reference_tables_ship_in_the_wheel() -> None:
    # the tables are data files read with importlib.resources: pyproject's package-data must
    # name every one of them, or an installed timkit generates nothing
    root = Path(__file__).resolve().parents[3]
    package = root / "src" / "timkit"
    globs = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["timkit"]
    tables = sorted((package / "directory" / "demo" / "data").iterdir())
    assert len(tables) >= 5
    for table in tables:
        relative = table.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in globs), relative
