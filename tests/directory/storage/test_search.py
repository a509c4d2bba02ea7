"""FHIR search on the directory (ML-123880), on SQLite and on PostgreSQL.

Each search feature runs on the 18 api-vzd examples (``examples``) and, where the examples
lack variety, on a small purpose-built network of active and inactive organisations,
practitioners, locations and endpoints (``network``, read-only like ``examples``) or on an
empty ``directory`` of the test's own when the test writes (paging under concurrent writes,
renaming an organisation, ``_lastUpdated``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from tests.support.postgres import PostgresServer
from timkit.core.errors import IssueType, TimkitError
from timkit.directory.handlers import Directory, searchset
from timkit.directory.load import load
from timkit.directory.query import SearchQuery
from timkit.directory.service import open_directory
from timkit.directory.storage.search import SearchResult
from timkit.directory.storage.store import distance_km, now

BASE = "http://directory.test/search"
ORIGIN = "https://gematik.de/fhir/directory/CodeSystem/Origin"
TELEMATIK_ID = "https://gematik.de/fhir/sid/telematik-id"
PAYLOAD_TYPE = "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryPayloadType"
CONNECTION_TYPE = "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryConnectionType"
PROFESSION = "https://gematik.de/fhir/directory/CodeSystem/PractitionerProfessionOID"
ORGANIZATION_PROFESSION = "https://gematik.de/fhir/directory/CodeSystem/OrganizationProfessionOID"
_numbers = itertools.count()

Pairs = list[tuple[str, str]]


# -- helpers ---------------------------------------------------------------------------------


def _pairs(query: str | Pairs) -> Pairs:
    """``a=1&b=2`` as pairs; each part percent-decoded, ``+`` kept (the complex AND)."""
    if not isinstance(query, str):
        return query
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _search(
    directory: Directory, resource_type: str, query: str | Pairs = "", *, strict: bool = False
) -> tuple[SearchQuery, SearchResult]:
    return directory.search(resource_type, _pairs(query), strict=strict)


def _ids(directory: Directory, resource_type: str, query: str | Pairs = "") -> set[str]:
    """Ids of all matches (the search must fit on one page)."""
    _, result = _search(directory, resource_type, [*_pairs(query), ("_count", "1000")])
    assert result.next_cursor is None
    return {m.id for m in result.matches}


def _ordered(directory: Directory, resource_type: str, query: str | Pairs = "") -> list[str]:
    _, result = _search(directory, resource_type, [*_pairs(query), ("_count", "1000")])
    return [m.id for m in result.matches]


def _bundle(directory: Directory, resource_type: str, query: str | Pairs = "") -> dict[str, Any]:
    return searchset(*_search(directory, resource_type, query), BASE)


def _entries(bundle: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (e["resource"]["resourceType"], e["resource"]["id"], e["search"]["mode"])
        for e in bundle.get("entry", [])
    }


def _link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


def _error(directory: Directory, resource_type: str, query: str | Pairs, **kw: Any) -> TimkitError:
    with pytest.raises(TimkitError) as caught:
        _search(directory, resource_type, query, **kw)
    return caught.value


def _walk(
    directory: Directory,
    resource_type: str,
    query: str | Pairs,
    between: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """Follow ``next`` links from the first page; ``between(page_number)`` runs after each."""
    pages: list[list[str]] = []
    bundle = _bundle(directory, resource_type, query)
    while True:
        pages.append([e["resource"]["id"] for e in bundle.get("entry", [])])
        if between is not None:
            between(len(pages))
        following = _link(bundle, "next")
        if following is None:
            return pages
        parts = urlsplit(following)
        assert parts.path == f"{urlsplit(BASE).path}/{resource_type}"
        bundle = _bundle(directory, resource_type, parse_qsl(parts.query))


# -- resource builders (valid for the gematik profiles) --------------------------------------


def _meta(origin: str = "ldap") -> dict[str, Any]:
    return {"tag": [{"system": ORIGIN, "code": origin}]}


def organization(
    id: str,
    name: str,
    *,
    active: bool = True,
    telematik_id: str | None = None,
    profession: str = "1.2.276.0.76.4.50",
    part_of: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": id,
        "meta": _meta(),
        "identifier": [{"system": TELEMATIK_ID, "value": telematik_id or f"1-{id}"}],
        "active": active,
        "type": [{"coding": [{"system": ORGANIZATION_PROFESSION, "code": profession}]}],
        "name": name,
        **extra,
    }
    if part_of:
        resource["partOf"] = {"reference": f"Organization/{part_of}"}
    return resource


def practitioner(
    id: str,
    family: str,
    given: str,
    *,
    active: bool = True,
    qualification: tuple[str, str] = ("1.2.276.0.76.4.30", "Ärztin/Arzt"),
) -> dict[str, Any]:
    code, display = qualification
    return {
        "resourceType": "Practitioner",
        "id": id,
        "meta": _meta(),
        "identifier": [{"system": TELEMATIK_ID, "value": f"1-{id}"}],
        "active": active,
        "name": [{"family": family, "given": [given], "text": f"{given} {family}"}],
        "qualification": [
            {"code": {"coding": [{"system": PROFESSION, "code": code, "display": display}]}}
        ],
    }


def location(
    id: str,
    city: str,
    postal_code: str,
    line: str,
    *,
    position: tuple[float, float] | None = None,
    organization: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": id,
        "meta": _meta(),
        "name": f"Standort {city}",
        "address": {"line": [line], "city": city, "postalCode": postal_code, "country": "DE"},
    }
    if position:
        resource["position"] = {"latitude": position[0], "longitude": position[1]}
    if organization:
        resource["managingOrganization"] = {"reference": f"Organization/{organization}"}
    return resource


def endpoint(
    id: str,
    name: str,
    address: str,
    *,
    status: str = "active",
    payload: str = "tim-chat",
    display: str | None = "TI-Messenger chat",
) -> dict[str, Any]:
    coding = {"system": PAYLOAD_TYPE, "code": payload}
    if display:
        coding["display"] = display
    return {
        "resourceType": "Endpoint",
        "id": id,
        "meta": _meta("owner"),
        "status": status,
        "connectionType": {"system": CONNECTION_TYPE, "code": "tim"},
        "payloadType": [{"coding": [coding]}],
        "name": name,
        "address": address,
    }


def _refs(resource_type: str, ids: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"reference": f"{resource_type}/{i}"} for i in ids]


def healthcare_service(
    id: str,
    organization: str,
    name: str,
    *,
    locations: tuple[str, ...] = (),
    endpoints: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "resourceType": "HealthcareService",
        "id": id,
        "meta": _meta(),
        "providedBy": {"reference": f"Organization/{organization}"},
        "name": name,
        "location": _refs("Location", locations),
        "endpoint": _refs("Endpoint", endpoints),
    }


def practitioner_role(
    id: str,
    practitioner: str,
    *,
    locations: tuple[str, ...] = (),
    endpoints: tuple[str, ...] = (),
    organization: str | None = None,
    period: dict[str, str] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": id,
        "meta": _meta(),
        "practitioner": {"reference": f"Practitioner/{practitioner}"},
        "location": _refs("Location", locations),
        "endpoint": _refs("Endpoint", endpoints),
    }
    if organization:
        resource["organization"] = {"reference": f"Organization/{organization}"}
    if period:
        resource["period"] = period
    return resource


KOELN = (50.9413, 6.9583)
BONN = (50.7374, 7.0982)


def network_resources() -> list[dict[str, Any]]:
    """Active and inactive organisations and practitioners, their locations and endpoints.

    Referrers come before what they refer to, so linked full-text must be refreshed when the
    targets arrive.
    """
    return [
        healthcare_service(
            "hcs-active",
            "org-active",
            "Zahnheilkunde",
            locations=("loc-koeln",),
            endpoints=("ep-chat",),
        ),
        healthcare_service(
            "hcs-inactive",
            "org-inactive",
            "Allgemeinmedizin",
            locations=("loc-bonn",),
            endpoints=("ep-old",),
        ),
        practitioner_role(
            "role-anna",
            "pr-anna",
            locations=("loc-koeln",),
            endpoints=("ep-chat", "ep-kim"),
            organization="org-active",
            period={"start": "2024-01-01", "end": "2024-06-30"},
        ),
        practitioner_role(
            "role-bernd",
            "pr-bernd",
            locations=("loc-bonn",),
            endpoints=("ep-old",),
            period={"start": "2025-01-01T08:00:00+01:00"},
        ),
        practitioner_role(
            "role-carl",
            "pr-carl",
            locations=("loc-koeln",),
            period={"start": "2023-01-01", "end": "2023-12-31"},
        ),
        organization("org-parent", "Klinikverbund Nord"),
        organization("org-active", "Praxis Sonnenschein", part_of="org-parent"),
        organization("org-inactive", "Praxis Schatten", active=False),
        practitioner(
            "pr-anna", "Müller", "Anna", qualification=("1.2.276.0.76.4.31", "Zahnärztin/Zahnarzt")
        ),
        practitioner("pr-bernd", "Mueller", "Bernd"),
        practitioner("pr-carl", "Müller-Lüdenscheidt", "Carl", active=False),
        location(
            "loc-koeln",
            "Köln",
            "50667",
            "Domkloster 4",
            position=KOELN,
            organization="org-active",
        ),
        location(
            "loc-bonn", "Bonn", "53111", "Markt 2", position=BONN, organization="org-inactive"
        ),
        endpoint("ep-chat", "Praxis Chat", "@anna:tim.example.de"),
        endpoint("ep-old", "Alter Chat", "@old:tim.example.de", status="off"),
        endpoint(
            "ep-kim",
            "KIM Praxis",
            "anna@praxis.kim.telematik",
            payload="Arztbrief",
            display="eArztbrief",
        ),
    ]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Directory]:
    """The purpose-built network; shared by the module, so do not write to it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('network')}/network.db"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database(f"network_{next(_numbers)}")
    opened = open_directory(url)
    load(opened, network_resources(), workers=0)
    analyze(opened)
    yield opened
    opened.db.close()


def analyze(directory: Directory) -> None:
    """Give PostgreSQL's planner statistics, as autovacuum does soon after a bulk load.

    Without them every estimate is one row and chains are planned as nested loops that rerun
    the inner search per candidate: hundreds of milliseconds per page on 1000 resources.
    """
    if directory.db.dialect == "postgresql":
        with directory.db.write() as tx:
            tx.execute("ANALYZE")


# -- token -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"identifier={TELEMATIK_ID}|9-2.58.00000040", {"OrganizationExample001"}),
        ("identifier=9-2.58.00000040", {"OrganizationExample001"}),
        ("identifier=|9-2.58.00000040", set()),  # |code: no system, but it has one
        (
            f"identifier={TELEMATIK_ID}|",
            {
                "NCPeHOrganizationExample",
                "OrganizationExample",
                "OrganizationExample001",
                "PharmacyOrganizationExample",
            },
        ),
        ("identifier=https://other|9-2.58.00000040", set()),
        (
            "identifier=2-2.58.00000040,9-2.58.00000040",
            {"OrganizationExample", "OrganizationExample001"},
        ),
        (
            "type:not=1.2.276.0.76.4.58",
            {
                "NCPeHOrganizationExample",
                "OrganizationExample",
                "PharmacyOrganizationExample",
            },
        ),
        ("type:text=zahnarzt", {"OrganizationExample"}),
        ("type:text=ÖFFENTLICHE apo", {"PharmacyOrganizationExample"}),
        (
            "active=true",
            {
                "NCPeHOrganizationExample",
                "OrganizationExample",
                "OrganizationExample001",
                "PharmacyOrganizationExample",
            },
        ),
        ("active:not=true", set()),
        ("_tag=fdv-relevant", {"OrganizationExample"}),
        ("_tag=ldap&_tag=fdv-relevant", {"OrganizationExample"}),
        (
            "_tag:not=fdv-relevant&active=true",
            {
                "NCPeHOrganizationExample",
                "OrganizationExample001",
                "PharmacyOrganizationExample",
            },
        ),
        (
            "_profile=https://gematik.de/fhir/directory/StructureDefinition/"
            "OrganizationDirectoryStrict&_id=OrganizationExample",
            {"OrganizationExample"},
        ),
    ],
)
def test_ml_123880_token_search(examples: Directory, query: str, expected: set[str]) -> None:
    assert _ids(examples, "Organization", query) == expected


def test_ml_123880_token_pipe_code_means_no_system(examples: Directory) -> None:
    # qualification also indexes Coding.display as a code without a system
    assert _ids(examples, "Practitioner", "qualification=|Zahnärztin/Zahnarzt") == {
        "TIPractitionerExampleDentist"
    }
    assert _ids(examples, "Practitioner", f"qualification={PROFESSION}|1.2.276.0.76.4.31") == {
        "TIPractitionerExample001",
        "TIPractitionerExampleDentist",
    }
    assert _ids(
        examples, "Practitioner", "identifier=https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR|"
    ) == {"TIPractitionerExample001"}


def test_ml_123880_token_text_matches_the_display(examples: Directory) -> None:
    assert _ids(examples, "Endpoint", "payload-type:text=TI-Messenger chat") == {
        "MessengerEndpointWithVisibility",
        "PharmacyEndpointTIMExample",
    }
    assert _ids(examples, "Endpoint", "connection-type:text=kim") == {"KIMEndpointExample"}


def test_ml_123880_token_missing(examples: Directory) -> None:
    assert _ids(examples, "Endpoint", "endpointVisibility:missing=false") == {
        "MessengerEndpointWithVisibility",
        "KIMEndpointExample",
    }
    assert "KIMEndpointExample" not in _ids(examples, "Endpoint", "endpointVisibility:missing=true")


# -- string ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name=gem", {"OrganizationExample001"}),
        ("name=GEMATIK", {"OrganizationExample001"}),
        ("name=GmbH", set()),  # not at the start of a name
        ("name=Rathausapotheke,NCPeH", {"PharmacyOrganizationExample", "NCPeHOrganizationExample"}),
        ("name:exact=gematik GmbH", {"OrganizationExample001"}),
        ("name:exact=Gematik GmbH", set()),
        ("name:exact=gematik Gmb", set()),
        ("name:contains=MATIK gm", {"OrganizationExample001"}),
        ("name:contains=%", set()),  # LIKE wildcards are escaped
        ("name:contains=_", set()),
        ("name:contains=praxis dr", {"OrganizationExample"}),
        ("address-city=frankfurt AM", {"PharmacyOrganizationExample"}),
        ("address=Friedrichstr", {"OrganizationExample001"}),
        ("address=10117", {"OrganizationExample001"}),
        ("address-postalcode=6059", {"PharmacyOrganizationExample"}),
        ("name:missing=true", set()),
    ],
)
def test_ml_123880_string_search(examples: Directory, query: str, expected: set[str]) -> None:
    assert _ids(examples, "Organization", query) == expected


def test_ml_123880_string_search_ignores_case_and_accents(network: Directory) -> None:
    muller = {"pr-anna", "pr-carl"}  # Müller, Müller-Lüdenscheidt
    assert _ids(network, "Practitioner", "family=muller") == muller
    assert _ids(network, "Practitioner", "family=MÜLLER") == muller
    assert _ids(network, "Practitioner", "name=müller") == muller
    assert _ids(network, "Practitioner", "family=Mueller") == {"pr-bernd"}
    assert _ids(network, "Practitioner", "family:exact=Müller") == {"pr-anna"}
    assert _ids(network, "Practitioner", "family:exact=muller") == set()
    assert _ids(network, "Practitioner", "family:contains=LUDEN") == {"pr-carl"}
    assert _ids(network, "Practitioner", "given=ann") == {"pr-anna"}


def test_ml_123880_string_search_folds_accents_in_the_examples(examples: Directory) -> None:
    assert _ids(examples, "Organization", "type-display=offentliche") == {
        "PharmacyOrganizationExample"
    }
    for value in ("hauptstrasse", "HAUPTSTRASSE 1", "Hauptstraße", "hauptstraSSe"):
        assert _ids(examples, "Location", f"address={value}") == {"LocationExample"}  # ß = ss


# -- reference -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Organization/OrganizationExample",
        "OrganizationExample",
        "http://example.org/fhir/Organization/OrganizationExample",
    ],
)
def test_ml_123880_reference_search(examples: Directory, value: str) -> None:
    assert _ids(examples, "HealthcareService", f"organization={value}") == {
        "HealthcareServiceExample"
    }


def test_ml_123880_reference_search_forms(examples: Directory) -> None:
    assert _ids(examples, "HealthcareService", "organization:Organization=OrganizationExample") == {
        "HealthcareServiceExample"
    }
    assert _ids(examples, "HealthcareService", "organization=Location/OrganizationExample") == set()
    assert _ids(examples, "PractitionerRole", "practitioner=TIPractitionerExampleDentist") == {
        "PractitionerRoleExample"
    }
    assert _ids(examples, "HealthcareService", "location:missing=true") == {
        "NCPeHHealthcareServiceExample"
    }
    assert _ids(examples, "Location", "organization=OrganizationExample001") == {
        "LocationExample",
        "PharmacyLocationExample",
    }


# -- date ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", {"role-anna"}),  # the period lies within 2024
        ("2024-03", set()),  # … but not within March
        ("ge2025-01-01", {"role-bernd"}),
        ("gt2024-03-01", {"role-anna", "role-bernd"}),
        ("lt2024-01-01", {"role-carl"}),
        ("le2023-12-31", {"role-carl"}),
        ("sa2023-12-31", {"role-anna", "role-bernd"}),
        ("eb2024-01-01", {"role-carl"}),
        ("ne2024", {"role-bernd", "role-carl"}),
        ("ge2024-06-30T23:00:00Z", {"role-anna", "role-bernd"}),
        ("ge2024-07-01,le2023-01-01", {"role-bernd", "role-carl"}),
    ],
)
def test_ml_123880_date_search(network: Directory, value: str, expected: set[str]) -> None:
    assert _ids(network, "PractitionerRole", f"date={value}") == expected


def test_ml_123880_date_search_ands_repeated_parameters(network: Directory) -> None:
    assert _ids(network, "PractitionerRole", "date=ge2023-06-01&date=le2024-02-01") == {
        "role-anna",
        "role-carl",
    }


def _wait_for_next_millisecond(instant: str) -> None:
    """Until :func:`now` moves past ``instant`` (stored times have millisecond precision)."""
    while now() <= instant:
        pass


def test_ml_123880_last_updated_search(directory: Directory) -> None:
    first = directory.create("Endpoint", endpoint("x", "Erster", "@a:x.de")).stored
    _wait_for_next_millisecond(first.last_updated)
    second = directory.create("Endpoint", endpoint("x", "Zweiter", "@b:x.de")).stored
    a, b = first.id, second.id
    at = first.last_updated  # e.g. 2026-05-17T08:30:00.123+00:00
    assert _ids(directory, "Endpoint", f"_lastUpdated={at}") == {a}
    assert _ids(directory, "Endpoint", f"_lastUpdated=ge{at}") == {a, b}
    assert _ids(directory, "Endpoint", f"_lastUpdated=gt{at}") == {b}
    assert _ids(directory, "Endpoint", f"_lastUpdated=le{at}") == {a}
    assert _ids(directory, "Endpoint", f"_lastUpdated=lt{second.last_updated}") == {a}
    assert _ids(directory, "Endpoint", f"_lastUpdated=sa{at}") == {b}
    assert _ids(directory, "Endpoint", f"_lastUpdated=ne{at}") == {b}
    assert _ids(directory, "Endpoint", f"_lastUpdated={at[:10]}") >= {a}
    assert _ids(directory, "Endpoint", "_lastUpdated=ge2000-01-01&_lastUpdated=lt3000") == {a, b}
    assert _ids(directory, "Endpoint", "_lastUpdated=lt2000") == set()
    # the same instant written in another offset
    hours = int(at[11:13])
    shifted = f"{at[:11]}{(hours + 2) % 24:02d}{at[13:23]}+02:00"
    if hours < 22:  # same day in +02:00
        assert _ids(directory, "Endpoint", f"_lastUpdated={shifted}") == {a}
    assert _ids(directory, "Endpoint", f"_lastUpdated=eq{at[:19]}Z") >= {a}


def test_ml_123880_malformed_date_is_400(examples: Directory) -> None:
    error = _error(examples, "Endpoint", "_lastUpdated=gt2024-13-01")
    assert error.status == 400
    assert "_lastUpdated" in error.message


# -- chains ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "query", "expected"),
    [
        (
            "HealthcareService",
            "organization.active=true",
            {
                "HealthcareServiceExample",
                "NCPeHHealthcareServiceExample",
                "PharmacyHealthCareServiceExample",
            },
        ),
        (
            "HealthcareService",
            "organization.identifier=2-2.58.00000040",
            {"HealthcareServiceExample"},
        ),
        ("HealthcareService", "organization.name=rathaus", {"PharmacyHealthCareServiceExample"}),
        (
            "HealthcareService",
            "organization.type=1.2.276.0.76.4.54",
            {"PharmacyHealthCareServiceExample"},
        ),
        (
            "HealthcareService",
            "organization._id=NCPeHOrganizationExample",
            {"NCPeHHealthcareServiceExample"},
        ),
        ("PractitionerRole", "practitioner.name=Musterman", {"PractitionerRoleExample"}),
        ("PractitionerRole", "practitioner.name=max", {"PractitionerRoleExample"}),
        ("PractitionerRole", "practitioner.name=Schmidt", set()),
        (
            "PractitionerRole",
            "practitioner.qualification=1.2.276.0.76.4.31",
            {"PractitionerRoleExample"},
        ),
        ("PractitionerRole", "practitioner.active=true", set()),  # the examples omit active
        ("PractitionerRole", "location.address=Berlin", {"PractitionerRoleExample"}),
        ("PractitionerRole", "location.address=10117", {"PractitionerRoleExample"}),
        ("PractitionerRole", "location.address-city=berlin", {"PractitionerRoleExample"}),
        ("PractitionerRole", "location.address-city=Frankfurt", set()),
        (
            "HealthcareService",
            "location.address-city=Frankfurt",
            {"PharmacyHealthCareServiceExample"},
        ),
        ("PractitionerRole", "endpoint.payload-type=tim-chat", {"PractitionerRoleExample"}),
        (
            "HealthcareService",
            "endpoint.payload-type=tim-chat",
            {
                "HealthcareServiceExample",
                "PharmacyHealthCareServiceExample",
            },
        ),
        ("PractitionerRole", "endpoint.status=active", {"PractitionerRoleExample"}),
        ("PractitionerRole", "endpoint.name=messenger", {"PractitionerRoleExample"}),
        ("PractitionerRole", "endpoint.address=matrix:u/74c1", {"PractitionerRoleExample"}),
        ("PractitionerRole", "endpoint.address=matrix:u/Systems", set()),
        (
            "Location",
            "organization.address-city=Berlin",
            {
                "LocationExample",
                "PharmacyLocationExample",
            },
        ),
        ("PractitionerRole", "location.organization.name=gematik", {"PractitionerRoleExample"}),
    ],
)
def test_ml_123880_chained_search_on_examples(
    examples: Directory, resource_type: str, query: str, expected: set[str]
) -> None:
    assert _ids(examples, resource_type, query) == expected


@pytest.mark.parametrize(
    ("resource_type", "query", "expected"),
    [
        ("PractitionerRole", "practitioner.active=true", {"role-anna", "role-bernd"}),
        ("PractitionerRole", "practitioner.active=false", {"role-carl"}),
        ("PractitionerRole", "practitioner.name=MÜLLER", {"role-anna", "role-carl"}),
        ("PractitionerRole", "practitioner.name=mueller", {"role-bernd"}),
        ("PractitionerRole", "practitioner.active=true&practitioner.name=muller", {"role-anna"}),
        ("PractitionerRole", "practitioner.qualification=1.2.276.0.76.4.31", {"role-anna"}),
        ("PractitionerRole", "practitioner.qualification=Ärztin/Arzt", {"role-bernd", "role-carl"}),
        ("PractitionerRole", "endpoint.status=active", {"role-anna"}),
        ("PractitionerRole", "endpoint.status=off", {"role-bernd"}),
        (
            "PractitionerRole",
            "endpoint.payload-type=tim-chat&endpoint.status=active",
            {"role-anna"},
        ),
        ("PractitionerRole", "endpoint.payload-type=Arztbrief", {"role-anna"}),
        ("PractitionerRole", "endpoint.payload-type:text=earzt", {"role-anna"}),
        ("PractitionerRole", "endpoint.name=alter", {"role-bernd"}),
        ("PractitionerRole", "endpoint.address=@old", {"role-bernd"}),
        ("PractitionerRole", "location.address-city=koln", {"role-anna", "role-carl"}),
        ("PractitionerRole", "location.address=Domkloster", {"role-anna", "role-carl"}),
        ("PractitionerRole", "location.address=53111", {"role-bernd"}),
        ("PractitionerRole", "organization.active=true", {"role-anna"}),
        ("HealthcareService", "organization.active=true", {"hcs-active"}),
        ("HealthcareService", "organization.active=false", {"hcs-inactive"}),
        ("HealthcareService", "organization.name=praxis", {"hcs-active", "hcs-inactive"}),
        ("HealthcareService", "organization.active=true&endpoint.status=active", {"hcs-active"}),
        ("HealthcareService", "organization.active=false&endpoint.status=active", set()),
        ("HealthcareService", "organization.partof.name=Klinikverbund", {"hcs-active"}),
        ("HealthcareService", "organization.identifier=1-org-inactive", {"hcs-inactive"}),
    ],
)
def test_ml_123880_chained_search_on_active_and_inactive_data(
    network: Directory, resource_type: str, query: str, expected: set[str]
) -> None:
    assert _ids(network, resource_type, query) == expected


def test_ml_123880_chain_ignores_deleted_targets(directory: Directory) -> None:
    load(directory, network_resources(), workers=0)
    assert _ids(directory, "PractitionerRole", "endpoint.status=off") == {"role-bernd"}
    has = "_has:PractitionerRole:practitioner:endpoint.status=off"
    assert _ids(directory, "Practitioner", has) == {"pr-bernd"}
    directory.delete("Endpoint", "ep-old")
    assert _ids(directory, "PractitionerRole", "endpoint.status=off") == set()
    assert _ids(directory, "Practitioner", has) == set()
    # the reference itself is still there: a reference search does not check its target
    assert _ids(directory, "PractitionerRole", "endpoint=ep-old") == {"role-bernd"}
    directory.delete("PractitionerRole", "role-bernd")
    assert _ids(directory, "Practitioner", "_has:PractitionerRole:practitioner:_id=role-bernd") == (
        set()
    )


def test_ml_123880_negated_chain_needs_a_live_target(directory: Directory) -> None:
    """``endpoint.status:not=active``: some live endpoint that is not active.

    A reference to a deleted or never-created endpoint has no index rows, so a bare
    ``NOT EXISTS`` probe on the target's rows would wrongly take it for one.
    """
    load(directory, network_resources(), workers=0)
    dangling = practitioner_role("role-dangling", "pr-anna", endpoints=("no-such-endpoint",))
    directory.update("PractitionerRole", "role-dangling", dangling)
    assert _ids(directory, "PractitionerRole", "endpoint.status:not=active") == {"role-bernd"}
    assert _ids(directory, "PractitionerRole", "endpoint.name:missing=true") == set()
    assert _ids(directory, "PractitionerRole", "endpoint.name:missing=false") == {
        "role-anna",
        "role-bernd",
    }
    directory.delete("Endpoint", "ep-old")
    assert _ids(directory, "PractitionerRole", "endpoint.status:not=active") == set()
    assert _ids(directory, "PractitionerRole", "endpoint.name:missing=true") == set()
    assert _ids(directory, "PractitionerRole", "endpoint._id=ep-old") == set()
    assert _ids(directory, "HealthcareService", "location.organization.name:missing=true") == set()


def test_ml_123880_chain_and_include_reach_targets_created_after_the_referrer(
    directory: Directory,
) -> None:
    """A reference to a resource that does not exist yet resolves once it is created."""
    role = practitioner_role("role", "late", locations=("late-loc",), endpoints=("late-ep",))
    directory.update("PractitionerRole", "role", role)
    query = "practitioner.active=true&endpoint.status=active&location.address-city=Bonn"
    assert _ids(directory, "PractitionerRole", query) == set()
    directory.update("Practitioner", "late", practitioner("late", "Spät", "Lena"))
    directory.create("Endpoint", endpoint("ignored", "Lenas Chat", "@lena:x.de"))
    directory.update("Endpoint", "late-ep", endpoint("late-ep", "Lenas Chat", "@lena:x.de"))
    assert _ids(directory, "PractitionerRole", query) == set()
    directory.update("Location", "late-loc", location("late-loc", "Bonn", "53111", "Markt 1"))
    assert _ids(directory, "PractitionerRole", query) == {"role"}
    assert _ids(directory, "Practitioner", "_has:PractitionerRole:practitioner:_id=role") == {
        "late"
    }
    assert _entries(_bundle(directory, "PractitionerRole", "_id=role&_include=*")) == {
        ("PractitionerRole", "role", "match"),
        ("Practitioner", "late", "include"),
        ("Endpoint", "late-ep", "include"),
        ("Location", "late-loc", "include"),
    }
    assert _ids(directory, "PractitionerRole", "_text=Lena Bonn") == {"role"}


def test_ml_123880_chain_and_include_follow_a_deleted_and_recreated_target(
    directory: Directory,
) -> None:
    load(directory, network_resources(), workers=0)
    directory.delete("Practitioner", "pr-bernd")
    assert _ids(directory, "PractitionerRole", "practitioner.name=mueller") == set()
    assert _entries(_bundle(directory, "PractitionerRole", "_id=role-bernd&_include=*")) == {
        ("PractitionerRole", "role-bernd", "match"),
        ("Location", "loc-bonn", "include"),
        ("Endpoint", "ep-old", "include"),
    }
    assert _ids(directory, "PractitionerRole", "_text=Bernd") == set()
    directory.update("Practitioner", "pr-bernd", practitioner("pr-bernd", "Mueller", "Bernd"))
    assert _ids(directory, "PractitionerRole", "practitioner.name=mueller") == {"role-bernd"}
    assert ("Practitioner", "pr-bernd", "include") in _entries(
        _bundle(directory, "PractitionerRole", "_id=role-bernd&_include=*")
    )
    assert _ids(directory, "PractitionerRole", "_text=Bernd") == {"role-bernd"}


# -- _id, _has -------------------------------------------------------------------------------


def test_ml_123880_id_search(examples: Directory) -> None:
    assert _ids(examples, "Endpoint", "_id=KIMEndpointExample,nope") == {"KIMEndpointExample"}
    assert _ids(examples, "Organization", "_id=KIMEndpointExample") == set()


def test_ml_123880_has_search(examples: Directory, network: Directory) -> None:
    assert _ids(examples, "Organization", "_has:HealthcareService:organization:name=Rathaus") == {
        "PharmacyOrganizationExample"
    }
    assert _ids(
        examples, "Practitioner", "_has:PractitionerRole:practitioner:location.address-city=Berlin"
    ) == {"TIPractitionerExampleDentist"}
    assert _ids(examples, "Endpoint", "_has:HealthcareService:endpoint:name=Zahnmedizin") == {
        "MessengerEndpointWithVisibility"
    }
    assert _ids(
        network, "Organization", "_has:HealthcareService:organization:endpoint.status=off"
    ) == {"org-inactive"}
    assert _ids(network, "Practitioner", "_has:PractitionerRole:practitioner:date=2024") == {
        "pr-anna"
    }


# -- _include / _revinclude ------------------------------------------------------------------


def test_ml_123880_include_specific_parameter(examples: Directory) -> None:
    bundle = _bundle(
        examples,
        "HealthcareService",
        "_id=HealthcareServiceExample&_include=HealthcareService:organization",
    )
    assert _entries(bundle) == {
        ("HealthcareService", "HealthcareServiceExample", "match"),
        ("Organization", "OrganizationExample", "include"),
    }
    assert bundle["total"] == 1  # includes are not counted


def test_ml_123880_include_with_target_type(examples: Directory) -> None:
    query = "_id=PharmacyHealthCareServiceExample&_include=HealthcareService:location:Location"
    assert {m for m in _entries(_bundle(examples, "HealthcareService", query))} == {
        ("HealthcareService", "PharmacyHealthCareServiceExample", "match"),
        ("Location", "PharmacyLocationExample", "include"),
    }
    query = "_id=PharmacyHealthCareServiceExample&_include=HealthcareService:*:Endpoint"
    assert _entries(_bundle(examples, "HealthcareService", query)) == {
        ("HealthcareService", "PharmacyHealthCareServiceExample", "match"),
        ("Endpoint", "MessengerEndpointWithVisibility", "include"),
    }


def test_ml_123880_include_star(examples: Directory) -> None:
    bundle = _bundle(examples, "HealthcareService", "organization.active=true&_include=*")
    assert _entries(bundle) == {
        ("HealthcareService", "HealthcareServiceExample", "match"),
        ("HealthcareService", "NCPeHHealthcareServiceExample", "match"),
        ("HealthcareService", "PharmacyHealthCareServiceExample", "match"),
        ("Organization", "OrganizationExample", "include"),
        ("Organization", "NCPeHOrganizationExample", "include"),
        ("Organization", "PharmacyOrganizationExample", "include"),
        ("Location", "LocationExample", "include"),
        ("Location", "PharmacyLocationExample", "include"),
        ("Endpoint", "MessengerEndpointWithVisibility", "include"),  # once, though shared
    }


def test_ml_123880_include_iterate_follows_included_resources(examples: Directory) -> None:
    plain = "_include=PractitionerRole:location&_include=Location:organization"
    assert _entries(_bundle(examples, "PractitionerRole", plain)) == {
        ("PractitionerRole", "PractitionerRoleExample", "match"),
        ("Location", "LocationExample", "include"),
    }
    iterate = "_include=PractitionerRole:location&_include:iterate=Location:organization"
    assert _entries(_bundle(examples, "PractitionerRole", iterate)) == {
        ("PractitionerRole", "PractitionerRoleExample", "match"),
        ("Location", "LocationExample", "include"),
        ("Organization", "OrganizationExample001", "include"),
    }


def test_ml_123880_include_iterate_two_hops(network: Directory) -> None:
    """PractitionerRole → Location → Organization → its parent Organization."""
    query = (
        "_id=role-anna&_include=PractitionerRole:practitioner&_include=PractitionerRole:location"
        "&_include:iterate=Location:organization&_include:iterate=Organization:partof"
    )
    assert _entries(_bundle(network, "PractitionerRole", query)) == {
        ("PractitionerRole", "role-anna", "match"),
        ("Practitioner", "pr-anna", "include"),
        ("Location", "loc-koeln", "include"),
        ("Organization", "org-active", "include"),
        ("Organization", "org-parent", "include"),
    }
    one_hop = query.replace("_include:iterate=Organization:partof", "_include=Organization:partof")
    assert ("Organization", "org-parent", "include") not in _entries(
        _bundle(network, "PractitionerRole", one_hop)
    )


def test_ml_123880_include_star_iterate(network: Directory) -> None:
    bundle = _bundle(network, "PractitionerRole", "_id=role-carl&_include:iterate=*")
    assert _entries(bundle) == {
        ("PractitionerRole", "role-carl", "match"),
        ("Practitioner", "pr-carl", "include"),
        ("Location", "loc-koeln", "include"),
        ("Organization", "org-active", "include"),
        ("Organization", "org-parent", "include"),
    }


def test_ml_123880_revinclude(examples: Directory) -> None:
    bundle = _bundle(
        examples,
        "Organization",
        "_id=OrganizationExample001&_revinclude=Location:organization",
    )
    assert _entries(bundle) == {
        ("Organization", "OrganizationExample001", "match"),
        ("Location", "LocationExample", "include"),
        ("Location", "PharmacyLocationExample", "include"),
    }
    bundle = _bundle(
        examples,
        "Organization",
        "_id=OrganizationExample001&_revinclude=Location:organization"
        "&_revinclude:iterate=PractitionerRole:location",
    )
    assert ("PractitionerRole", "PractitionerRoleExample", "include") in _entries(bundle)


def test_ml_123880_revinclude_respects_target_type(examples: Directory) -> None:
    query = "_id=PharmacyOrganizationExample&_revinclude=HealthcareService:organization"
    assert ("HealthcareService", "PharmacyHealthCareServiceExample", "include") in _entries(
        _bundle(examples, "Organization", query)
    )
    # the target type names the type of the matches a reverse include may start from
    assert _entries(_bundle(examples, "Organization", f"{query}:Location")) == {
        ("Organization", "PharmacyOrganizationExample", "match")
    }


def test_ml_123880_revinclude_then_include_iterate(network: Directory) -> None:
    """Practitioner ← PractitionerRole → Location, Endpoint (two hops from the match)."""
    query = (
        "_id=pr-bernd&_revinclude=PractitionerRole:practitioner"
        "&_include:iterate=PractitionerRole:location&_include:iterate=PractitionerRole:endpoint"
    )
    assert _entries(_bundle(network, "Practitioner", query)) == {
        ("Practitioner", "pr-bernd", "match"),
        ("PractitionerRole", "role-bernd", "include"),
        ("Location", "loc-bonn", "include"),
        ("Endpoint", "ep-old", "include"),
    }


def test_ml_123880_include_leaves_out_matches_and_deleted_targets(directory: Directory) -> None:
    load(directory, network_resources(), workers=0)
    bundle = _bundle(
        directory, "Organization", "_id=org-active,org-parent&_include=Organization:partof"
    )
    assert _entries(bundle) == {
        ("Organization", "org-active", "match"),
        ("Organization", "org-parent", "match"),
    }
    directory.delete("Location", "loc-koeln")
    bundle = _bundle(directory, "PractitionerRole", "_id=role-carl&_include=*")
    assert _entries(bundle) == {
        ("PractitionerRole", "role-carl", "match"),
        ("Practitioner", "pr-carl", "include"),
    }


# -- _text / _content ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "query", "expected"),
    [
        ("Organization", "_content=Zahnarztpraxis", {"OrganizationExample"}),
        ("Organization", "_content=zahnarztpraxis BAHNHOF", {"OrganizationExample"}),
        ("Organization", "_text=Friedrichstr 136", {"OrganizationExample001"}),
        ("Organization", "_content=Mustermann Zahnarzt", {"OrganizationExample"}),
        ("Organization", "_content=Mustermann Rathaus", set()),
        # words PostgreSQL's parser used to keep whole (e-mail, OID, Telematik-ID)
        ("Organization", "_content=betrieb", {"OrganizationExample001"}),
        ("Organization", "_content=gematik.de", {"OrganizationExample001"}),
        ("Organization", "_content=1.2.276.0.76.4.54", {"PharmacyOrganizationExample"}),
        ("Organization", "_content=9-2.58.00000040", {"OrganizationExample001"}),
        ("Endpoint", "_content=mustermann", {"KIMEndpointExample"}),
        ("Endpoint", "_content=SystemsEngineering", {"OrganizationExample001-Endpoint-TIM"}),
        # linked resources' text: Organization name, Location city, Endpoint name
        ("HealthcareService", "_text=Zahnarztpraxis", {"HealthcareServiceExample"}),
        ("HealthcareService", "_text=Frankfurt", {"PharmacyHealthCareServiceExample"}),
        ("HealthcareService", "_text=Theodor-Stern-Kai", {"PharmacyHealthCareServiceExample"}),
        (
            "HealthcareService",
            "_text=3-07.2.1444560000.16.108",
            {"PharmacyHealthCareServiceExample"},
        ),
        (
            "HealthcareService",
            "_text=Messenger",
            {
                "HealthcareServiceExample",
                "PharmacyHealthCareServiceExample",
            },
        ),
        ("HealthcareService", "_text=Messenger&name=Zahn", {"HealthcareServiceExample"}),
        ("PractitionerRole", "_text=Berlin Musterman", {"PractitionerRoleExample"}),
        ("PractitionerRole", "_text=Hamburg", set()),
    ],
)
def test_ml_123880_fulltext_search(
    examples: Directory, resource_type: str, query: str, expected: set[str]
) -> None:
    assert _ids(examples, resource_type, query) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"Theodor Stern Kai"', {"PharmacyHealthCareServiceExample"}),
        ('"Stern Theodor"', set()),  # a phrase keeps its order
        ("Rathaus", {"HealthcareServiceExample", "PharmacyHealthCareServiceExample"}),
        ('"Rathaus"', {"HealthcareServiceExample"}),  # a whole word: "Praxis am Rathaus"
        ('"Rathaus" Messenger', {"HealthcareServiceExample"}),
        ("Rathaus*", {"HealthcareServiceExample", "PharmacyHealthCareServiceExample"}),
        ('"Rathaus*"', {"HealthcareServiceExample"}),  # no wildcard inside quotes
        (
            "Zahnmedizin | Rathausapotheke",
            {
                "HealthcareServiceExample",
                "PharmacyHealthCareServiceExample",
            },
        ),
        (
            "Zahnmedizin,Rathausapotheke",
            {
                "HealthcareServiceExample",
                "PharmacyHealthCareServiceExample",
            },
        ),
        ("Messenger -Frankfurt", {"HealthcareServiceExample"}),
        ('Messenger -"Frankfurt am Main"', {"HealthcareServiceExample"}),
        (
            'Messenger -"Main am Frankfurt"',
            {
                "HealthcareServiceExample",
                "PharmacyHealthCareServiceExample",
            },
        ),
        ('"2-2.58.00000040"', {"HealthcareServiceExample"}),
        ('Berlin+"Zahnarztpraxis Dr"', {"HealthcareServiceExample"}),
        ("Berlin Frankfurt", set()),
        ("aACHEN | berLIN", {"HealthcareServiceExample"}),
        ("Coppenbruegge~1 | Zahnmedizin~", {"HealthcareServiceExample"}),
    ],
)
def test_ml_123880_complex_fulltext_syntax(
    examples: Directory, text: str, expected: set[str]
) -> None:
    pairs = [("_text", text), ("_complexSearch", "true")]
    assert _ids(examples, "HealthcareService", pairs) == expected


def _howto_resources() -> list[dict[str, Any]]:
    """The addresses and Telematik-IDs the HOWTO's full-text examples search for."""
    return [
        organization("org-aachen", "Praxis Dr. Beispiel", telematik_id="1-2arvtst-ap104233"),
        organization("org-bremen", "Praxis am Deich", telematik_id="1-2arvtst-ap051582"),
        location("loc-aachen", "Aachen", "52078", "Franz-Wallraff-Str. 2"),
        location("loc-bremen", "Bremen", "28777", "Bessinger Str. 42"),
        endpoint("ep-aachen", "Aachen Chat", "@aachen:x.de"),
        healthcare_service(
            "hcs-aachen",
            "org-aachen",
            "Hausarzt",
            locations=("loc-aachen",),
            endpoints=("ep-aachen",),
        ),
        healthcare_service("hcs-bremen", "org-bremen", "Hausarzt", locations=("loc-bremen",)),
    ]


HOWTO_COMPLEX_EXAMPLES = [
    ('"Bessinger Str. 42"', {"hcs-bremen"}),
    ('Bessinger "Str." 42', {"hcs-bremen"}),
    ("Bessinger Str 42", {"hcs-bremen"}),
    ("Franz*+Wallraf*+Str*", {"hcs-aachen"}),
    ("Franz+Wallraf+Str", {"hcs-aachen"}),  # implicitly the beginning of a word
    ('"Franz Wallraf Str"', set()),
    ('"Franz Wallraff Str"', {"hcs-aachen"}),
    ('"Franz-Wallraff-Str."', {"hcs-aachen"}),
    ('"Franz"\\+"Wallraff"+"Str."', {"hcs-aachen"}),
    ("Aachen+Wallraf", {"hcs-aachen"}),
    ('"Aachen"+Wallraf', set()),  # a quotation mark makes every word exact
    ('"Aachen"+"Wallraf"', set()),
    ('"Aachen"+Wallraf*', {"hcs-aachen"}),
    ('"Aachen"+"Wallraf*"', set()),  # no wildcard inside quotes
    ('"aAChen"+wALlraf*', {"hcs-aachen"}),
    ('Berlin "Organisation 1-2arvtst-ap000139"', set()),
    ('"1-2arvtst-ap104233" | "1-2arvtst-ap051582"', {"hcs-aachen", "hcs-bremen"}),
    ('"1-2arvtst-ap104233","1-2arvtst-ap051582"', {"hcs-aachen", "hcs-bremen"}),
    ("Hausarzt -Aachen", {"hcs-bremen"}),
]


def test_ml_123880_howto_fulltext_examples(directory: Directory) -> None:
    """The HOWTO's table of full-text searches (complex syntax) and its other examples.

    Where the live VZD finds nothing because "." or an inner "-" is an operator to it
    (``Bessinger Str. 42``, ``Franz+Wallraff+Str.``, ``Franz-Wallraff-Str``), we find the
    address: both characters only separate words here.
    """
    load(directory, _howto_resources(), workers=0)
    for text, expected in HOWTO_COMPLEX_EXAMPLES:
        pairs = [("_text", text), ("_complexSearch", "true")]
        assert _ids(directory, "HealthcareService", pairs) == expected, text
    # simple syntax: "-" and "," are spaces
    for text in ("Franz-Wallraff-Str", "franz,wallraff", "1-2arvtst-ap104233"):
        assert _ids(directory, "HealthcareService", [("_text", text)]) == {"hcs-aachen"}, text
    bundle = _bundle(
        directory,
        "HealthcareService",
        "organization.active=true&_include=HealthcareService:organization"
        '&_include=HealthcareService:endpoint&_include=HealthcareService:location&_text="1-2arvtst-ap104233"'
        "&endpoint.status=active",
    )
    assert _entries(bundle) == {
        ("HealthcareService", "hcs-aachen", "match"),
        ("Organization", "org-aachen", "include"),
        ("Location", "loc-aachen", "include"),
        ("Endpoint", "ep-aachen", "include"),
    }


def test_ml_123880_simple_fulltext_treats_operators_as_words(examples: Directory) -> None:
    assert _ids(examples, "HealthcareService", [("_text", "Rathaus")]) == {
        "HealthcareServiceExample",
        "PharmacyHealthCareServiceExample",
    }
    assert _ids(examples, "HealthcareService", [("_text", "Theodor-Stern,Kai")]) == {
        "PharmacyHealthCareServiceExample"
    }


def test_ml_123880_simple_fulltext_types_ahead_on_the_last_word(examples: Directory) -> None:
    assert _ids(examples, "HealthcareService", [("_text", "Theodor Ste")]) == {
        "PharmacyHealthCareServiceExample"
    }
    assert _ids(examples, "HealthcareService", [("_text", "Theo Stern")]) == set()
    assert _ids(examples, "HealthcareService", [("_text", "Frankfurt am M")]) == {
        "PharmacyHealthCareServiceExample"
    }


def test_ml_123880_fulltext_without_a_word_is_400(examples: Directory) -> None:
    error = _error(examples, "HealthcareService", [("_text", "-- ,")])
    assert error.status == 400
    error = _error(
        examples, "HealthcareService", [("_text", "-Berlin"), ("_complexSearch", "true")]
    )
    assert error.status == 400


def test_ml_123880_fulltext_on_linked_network(network: Directory) -> None:
    """Linked text arrives although the referrers were loaded before their targets."""
    assert _ids(network, "HealthcareService", "_text=Sonnenschein") == {"hcs-active"}
    assert _ids(network, "HealthcareService", "_text=Köln") == {"hcs-active"}
    assert _ids(network, "PractitionerRole", "_text=Domkloster") == {"role-anna", "role-carl"}
    assert _ids(network, "PractitionerRole", "_text=zahnarztin") == {"role-anna"}
    assert _ids(network, "PractitionerRole", "_text=Ludenscheidt") == {"role-carl"}


def test_ml_123880_linked_text_follows_a_later_rename(directory: Directory) -> None:
    load(directory, network_resources(), workers=0)
    assert _ids(directory, "HealthcareService", "_text=Sonnenschein") == {"hcs-active"}
    renamed = organization("org-active", "Zahnzentrum Regenbogen", part_of="org-parent")
    directory.update("Organization", "org-active", renamed)
    assert _ids(directory, "HealthcareService", "_text=Sonnenschein") == set()
    assert _ids(directory, "HealthcareService", "_text=Regenbogen") == {"hcs-active"}
    assert _ids(directory, "PractitionerRole", "_text=Regenbogen") == {"role-anna"}
    directory.delete("Organization", "org-active")
    assert _ids(directory, "HealthcareService", "_text=Regenbogen") == set()
    assert _ids(directory, "HealthcareService", "_text=Zahnheilkunde") == {"hcs-active"}


# -- result parameters -----------------------------------------------------------------------


def test_ml_123880_summary_count(examples: Directory) -> None:
    bundle = _bundle(examples, "Organization", "active=true&_summary=count")
    assert bundle["total"] == 4
    assert "entry" not in bundle
    assert (
        _bundle(examples, "PractitionerRole", "practitioner.active=true&_summary=count")["total"]
        == 0
    )


def test_ml_123880_total_accurate_and_count(examples: Directory) -> None:
    bundle = _bundle(examples, "Organization", "_count=1&_total=accurate")
    assert bundle["total"] == 4
    assert len(bundle["entry"]) == 1
    assert _link(bundle, "next") is not None
    paged = _bundle(examples, "Organization", "_count=1")
    assert "total" not in paged  # not known without counting
    single = _bundle(examples, "Organization", "_count=10")
    assert single["total"] == 4  # all on one page: known for free
    assert _link(single, "next") is None
    none = _bundle(examples, "Organization", "_count=10&_total=none")
    assert "total" not in none
    empty = _bundle(examples, "Organization", "_count=0&_total=accurate")
    assert empty["total"] == 4
    assert "entry" not in empty


def test_ml_123880_default_page_size(directory: Directory) -> None:
    load(directory, [endpoint(f"ep-{i:02d}", "Chat", f"@{i}:x.de") for i in range(25)], workers=0)
    bundle = _bundle(directory, "Endpoint")
    assert len(bundle["entry"]) == 20
    assert _link(bundle, "next") is not None


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (
            "name",
            [
                "OrganizationExample001",  # gematik
                "NCPeHOrganizationExample",
                "PharmacyOrganizationExample",
                "OrganizationExample",  # Zahnarztpraxis
            ],
        ),
        (
            "-name",
            [
                "OrganizationExample",
                "PharmacyOrganizationExample",
                "NCPeHOrganizationExample",
                "OrganizationExample001",
            ],
        ),
        (
            "_id",
            [
                "NCPeHOrganizationExample",
                "OrganizationExample",
                "OrganizationExample001",
                "PharmacyOrganizationExample",
            ],
        ),
        (
            "-_id",
            [
                "PharmacyOrganizationExample",
                "OrganizationExample001",
                "OrganizationExample",
                "NCPeHOrganizationExample",
            ],
        ),
        (
            "address-city,_id",
            [
                "NCPeHOrganizationExample",  # no address first
                "OrganizationExample",
                "OrganizationExample001",  # Berlin
                "PharmacyOrganizationExample",  # Frankfurt
            ],
        ),
    ],
)
def test_ml_123880_sort(examples: Directory, sort: str, expected: list[str]) -> None:
    assert _ordered(examples, "Organization", f"_sort={sort}") == expected
    pages = _walk(examples, "Organization", f"_sort={sort}&_count=1")
    assert [p for page in pages for p in page] == expected


@pytest.mark.parametrize("sort", ["_lastUpdated", "-_lastUpdated"])
def test_ml_123880_sort_by_last_updated(examples: Directory, sort: str) -> None:
    _, result = _search(examples, "Endpoint", f"_sort={sort}&_count=100")
    stamps = [m.last_updated for m in result.matches]
    assert len(stamps) == 6
    assert stamps == sorted(stamps, reverse=sort.startswith("-"))


# -- paging ----------------------------------------------------------------------------------


def _paging_endpoints() -> list[dict[str, Any]]:
    active = [endpoint(f"ep-{i:02d}", f"Chat {i % 7}", f"@{i}:x.de") for i in range(25)]
    off = [endpoint(f"off-{i}", "Chat 0", f"@off{i}:x.de", status="off") for i in range(5)]
    return [*active, *off]


# "status" alone is scanned in rid order; a selective criterion (string, full text) drives
# the search and the rest is probed on its candidates; a _sort orders by the sort keys.
CRITERIA = ["status=active", "name=chat&status=active", "_text=chat&status=active"]


@pytest.mark.parametrize("sort", [None, "name", "-name", "_id", "-_lastUpdated"])
@pytest.mark.parametrize("criteria", CRITERIA)
def test_ml_123880_paging_walks_every_match_once(
    directory: Directory, criteria: str, sort: str | None
) -> None:
    load(directory, _paging_endpoints(), workers=0)
    query = f"{criteria}&_count=4" + (f"&_sort={sort}" if sort else "")
    pages = _walk(directory, "Endpoint", query)
    seen = [i for page in pages for i in page]
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 4, 1]
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == {f"ep-{i:02d}" for i in range(25)}
    assert seen == _ordered(directory, "Endpoint", query.replace("&_count=4", ""))


def test_ml_123880_next_link_keeps_the_search(directory: Directory) -> None:
    load(directory, _paging_endpoints(), workers=0)
    bundle = _bundle(directory, "Endpoint", "status=active&_count=4&_sort=-name&_total=accurate")
    following = _link(bundle, "next")
    assert following is not None
    params = dict(parse_qsl(urlsplit(following).query))
    assert params["status"] == "active"
    assert params["_sort"] == "-name"
    assert params["_count"] == "4"
    assert params["_cursor"]
    assert (
        _link(bundle, "self")
        == f"{BASE}/Endpoint?status=active&_count=4&_sort=-name&_total=accurate"
    )


@pytest.mark.parametrize("criteria", CRITERIA)
def test_ml_123880_paging_is_stable_under_concurrent_writes(
    directory: Directory, criteria: str
) -> None:
    """Seen resources never repeat and unchanged ones are never skipped."""
    load(directory, _paging_endpoints(), workers=0)
    initial = {f"ep-{i:02d}" for i in range(25)}
    deleted: set[str] = set()
    created: set[str] = set()
    seen_so_far: list[str] = []

    def write(page: int) -> None:
        if page > 4:
            return
        seen = set(seen_so_far)
        unseen = sorted(initial - seen - deleted)
        victims = [sorted(seen - deleted)[0], unseen[-1]]  # one seen, one not yet seen
        for victim in victims:
            directory.delete("Endpoint", victim)
            deleted.add(victim)
        for n in range(3):
            new_id = f"new-{page}-{n}"
            directory.update("Endpoint", new_id, endpoint(new_id, "Chat 0", f"@{new_id}:x.de"))
            created.add(new_id)
        changed = endpoint(unseen[0], "Chat 9", "@changed:x.de")
        directory.update("Endpoint", unseen[0], changed)  # still matches, new content

    bundle = _bundle(directory, "Endpoint", f"{criteria}&_count=4")
    pages = []
    while True:
        page = [e["resource"]["id"] for e in bundle.get("entry", [])]
        pages.append(page)
        seen_so_far.extend(page)
        write(len(pages))
        following = _link(bundle, "next")
        if following is None:
            break
        bundle = _bundle(directory, "Endpoint", parse_qsl(urlsplit(following).query))
    assert len(seen_so_far) == len(set(seen_so_far)), "a resource was returned twice"
    deleted_before_seen = {d for d in deleted if d not in seen_so_far}
    assert set(seen_so_far) >= initial - deleted_before_seen, "an unchanged resource was skipped"
    assert not (set(seen_so_far) & deleted_before_seen)
    assert not (set(seen_so_far) & created)  # the page set is pinned to the first page
    assert deleted_before_seen  # the scenario did delete ahead of the walk


def test_ml_123880_paging_is_stable_with_sort_under_concurrent_writes(directory: Directory) -> None:
    load(directory, _paging_endpoints(), workers=0)
    initial = {f"ep-{i:02d}" for i in range(25)}
    removed: set[str] = set()

    def write(page: int) -> None:
        if page == 2:
            for i in (0, 6, 13, 20):  # names Chat 0, Chat 6, Chat 6, Chat 6
                directory.delete("Endpoint", f"ep-{i:02d}")
                removed.add(f"ep-{i:02d}")
            for n in range(4):
                directory.update("Endpoint", f"new-{n}", endpoint(f"new-{n}", "Chat 3", "@n:x"))

    pages = _walk(directory, "Endpoint", "status=active&_count=4&_sort=name", between=write)
    seen = [i for page in pages for i in page]
    before = {i for page in pages[:2] for i in page}  # seen when the writes happened
    assert len(seen) == len(set(seen)), "a resource was returned twice"
    assert set(seen) >= initial - removed, "an unchanged resource was skipped"
    assert removed - before, "the scenario did delete ahead of the walk"
    assert not set(seen) & (removed - before)
    assert set(seen) <= initial  # the page set is pinned to the first page


def test_ml_123880_foreign_or_malformed_cursor_is_400(examples: Directory) -> None:
    bundle = _bundle(examples, "Organization", "_count=1&_sort=name")
    following = _link(bundle, "next")
    assert following is not None
    cursor = dict(parse_qsl(urlsplit(following).query))["_cursor"]
    error = _error(examples, "Organization", [("_cursor", cursor), ("_sort", "name,_id")])
    assert error.status == 400
    assert "_cursor" in error.message
    assert _error(examples, "Organization", [("_cursor", "nonsense!")]).status == 400


# -- near ------------------------------------------------------------------------------------


def test_ml_123880_near_in_and_out_of_radius(examples: Directory) -> None:
    pharmacy = (50.097, 8.6648)
    origin = (50.1503, 8.6168)  # the HOWTO's example
    distance = distance_km(*origin, *pharmacy)
    assert 6 < distance < 8
    inside = f"near={origin[0]}|{origin[1]}|{distance + 0.05:.3f}|km"
    outside = f"near={origin[0]}|{origin[1]}|{distance - 0.05:.3f}|km"
    assert _ids(examples, "Location", inside) == {"PharmacyLocationExample"}
    assert _ids(examples, "Location", outside) == set()
    assert _ids(examples, "Location", "near=52.52|13.405|100|km") == set()  # Berlin
    bundle = _bundle(
        examples,
        "HealthcareService",
        "organization.active=true&location.near=50.1503|8.6168|10|km"
        "&_include=HealthcareService:location",
    )
    assert _entries(bundle) == {
        ("HealthcareService", "PharmacyHealthCareServiceExample", "match"),
        ("Location", "PharmacyLocationExample", "include"),
    }


def test_ml_123880_near_on_network(network: Directory) -> None:
    assert _ids(network, "Location", "near=50.94|6.96|5|km") == {"loc-koeln"}
    assert _ids(network, "Location", "near=50.94|6.96|30|km") == {"loc-koeln", "loc-bonn"}
    assert _ids(network, "PractitionerRole", "location.near=50.74|7.10|1|km") == {"role-bernd"}
    assert _ids(
        network, "PractitionerRole", "location.near=50.84|7.03|15|km&practitioner.active=true"
    ) == {"role-anna", "role-bernd"}


@pytest.mark.parametrize(
    "value",
    [
        "50.1|8.6|100.1|km",
        "50.1|8.6|1000|km",
        "50.1|8.6|10",
        "50.1|8.6|10|mi",
        "50.1|8.6",
        "north|8.6|10|km",
        "95|8.6|10|km",
        "",
    ],
)
def test_ml_123880_near_over_100_km_or_malformed_is_400(examples: Directory, value: str) -> None:
    for resource_type, name in (("Location", "near"), ("HealthcareService", "location.near")):
        error = _error(examples, resource_type, [(name, value)])
        assert error.status == 400
        assert error.requirement == "ML-123880"


# -- unknown parameters ----------------------------------------------------------------------


def test_ml_123880_unknown_parameter_is_ignored_and_left_out_of_self_link(
    examples: Directory,
) -> None:
    bundle = _bundle(examples, "Organization", "foo=bar&name=gematik&organization.x=1")
    assert _entries(bundle) == {("Organization", "OrganizationExample001", "match")}
    assert _link(bundle, "self") == f"{BASE}/Organization?name=gematik"


def test_ml_123880_unknown_parameter_with_strict_is_400(examples: Directory) -> None:
    error = _error(examples, "Organization", "name=gematik&foo=bar", strict=True)
    assert error.status == 400
    assert error.errcode == IssueType.NOT_SUPPORTED
    assert "'foo'" in error.message


def test_ml_123880_values_databases_cannot_hold_are_400(examples: Directory) -> None:
    """A NUL in a value was a PostgreSQL DataError (HTTP 500)."""
    for pairs in ([("name", "a\x00")], [("_id", "\x00")], [("identifier", "x|\x00")]):
        assert _error(examples, "Organization", pairs).status == 400


# -- api-vzd custom SearchParameters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "query", "expected"),
    [
        (
            "Endpoint",
            "address=matrix:u/SystemsEngineering",
            {"OrganizationExample001-Endpoint-TIM"},
        ),
        (
            "Endpoint",
            "address:exact=dr.mustermann@praxis-mustermann.kim.telematik",
            {"KIMEndpointExample"},
        ),
        (
            "Endpoint",
            "address:contains=rathausapotheke",
            {"PharmacyEndpointOnlineAppointmentBookingExample"},
        ),
        (
            "Endpoint",
            "endpointVisibility=hide-versicherte",
            {
                "MessengerEndpointWithVisibility",
                "KIMEndpointExample",
            },
        ),
        (
            "Endpoint",
            "endpointVisibility=https://gematik.de/fhir/directory/CodeSystem/"
            "EndpointVisibilityCS|hide-versicherte",
            {
                "MessengerEndpointWithVisibility",
                "KIMEndpointExample",
            },
        ),
        (
            "Endpoint",
            "status=active&endpointVisibility:not=hide-versicherte",
            {
                "OrganizationExample001-Endpoint-TIM",
                "PharmacyEndpointErpReservationExample",
                "PharmacyEndpointOnlineAppointmentBookingExample",
                "PharmacyEndpointTIMExample",
            },
        ),
        ("Organization", "organizationVisibility=hide-versicherte", {"OrganizationExample001"}),
        ("Organization", "alias=Zahnarztpraxis am", {"OrganizationExample"}),
        ("Organization", "alias=rathaus", {"PharmacyOrganizationExample"}),
        ("Organization", "alias:exact=gematik", {"OrganizationExample001"}),
        ("Organization", "type-display=Zahnarztpraxis", {"OrganizationExample"}),
        ("Organization", "type-display=ÖFFENTLICHE", {"PharmacyOrganizationExample"}),
        ("Organization", "ncpeh-country=PT", {"NCPeHOrganizationExample"}),
        ("Organization", "ncpeh-country=urn:iso:std:iso:3166|PT", {"NCPeHOrganizationExample"}),
        ("Organization", "ncpeh-country:text=portugal", {"NCPeHOrganizationExample"}),
        ("Organization", "ncpeh-country=ES", set()),
        ("Endpoint", "owner-telematik-id=1-1.58.00000040", {"KIMEndpointExample"}),
        ("Endpoint", f"owner-telematik-id={TELEMATIK_ID}|1-1.58.00000040", {"KIMEndpointExample"}),
        ("HealthcareService", "holder-id=dtrust", {"HealthcareServiceExample"}),
        ("HealthcareService", "holder-id=atos", set()),
        (
            "Practitioner",
            "qualification=1.2.276.0.76.4.31",
            {
                "TIPractitionerExample001",
                "TIPractitionerExampleDentist",
            },
        ),
        ("Practitioner", "qualification=Zahnärztin/Zahnarzt", {"TIPractitionerExampleDentist"}),
        ("Practitioner", "qualification:text=zahnarztin", {"TIPractitionerExampleDentist"}),
        ("HealthcareService", "coverageAreaPostalCode=60597", {"PharmacyHealthCareServiceExample"}),
        ("HealthcareService", "coverageAreaPostalCode=6059", {"PharmacyHealthCareServiceExample"}),
        ("HealthcareService", "coverageAreaPostalCode=10117", set()),
        (
            "HealthcareService",
            "endpoint.endpointVisibility=hide-versicherte",
            {
                "HealthcareServiceExample",
                "PharmacyHealthCareServiceExample",
            },
        ),
    ],
)
def test_ml_123880_api_vzd_custom_search_parameters(
    examples: Directory, resource_type: str, query: str, expected: set[str]
) -> None:
    assert _ids(examples, resource_type, query) == expected


def test_ml_123880_examples_are_all_loaded(examples: Directory) -> None:
    counts = {
        t: len(_ids(examples, t))
        for t in (
            "Organization",
            "Practitioner",
            "PractitionerRole",
            "HealthcareService",
            "Location",
            "Endpoint",
        )
    }
    assert counts == {
        "Organization": 4,
        "Practitioner": 2,
        "PractitionerRole": 1,
        "HealthcareService": 3,
        "Location": 2,
        "Endpoint": 6,
    }


def test_builders_make_valid_resources(directory: Directory) -> None:
    resources = network_resources()
    stats = load(directory, copy.deepcopy(resources), workers=0)
    assert stats.resources == len(resources)
