"""The pure owner and visibility rules (:mod:`timkit.fhirproxy.handlers.rules`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from timkit.core.fhir import DIRECTORY_TYPES, TELEMATIK_ID
from timkit.fhirproxy.handlers import rules

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def tagged(resource: dict[str, Any], origin: str) -> dict[str, Any]:
    """``resource`` with Origin ``origin``."""
    return rules.with_origin(resource, origin)


def test_af_10036_hidden_endpoints() -> None:
    active = {"resourceType": "Endpoint", "status": "active"}
    assert not rules.hidden(active, insured=True)
    assert rules.hidden({**active, "status": "off"}, insured=False)
    assert rules.hidden({"resourceType": "Endpoint"}, insured=False)
    hide = {
        "url": rules.ENDPOINT_VISIBILITY,
        "valueCoding": {"code": rules.HIDE_INSURED},
    }
    assert rules.hidden({**active, "extension": [hide]}, insured=True)
    assert not rules.hidden({**active, "extension": [hide]}, insured=False)


def test_af_10036_hidden_organizations() -> None:
    hide = {"url": rules.ORGANIZATION_VISIBILITY, "valueCoding": {"code": rules.HIDE_INSURED}}
    organization = {"resourceType": "Organization", "extension": [hide]}
    assert rules.hidden(organization, insured=True)
    assert not rules.hidden(organization, insured=False)
    assert not rules.hidden({"resourceType": "HealthcareService"}, insured=True)


def test_ml_123874_ownership_helpers() -> None:
    resource = rules.with_owner_extension(
        {
            "resourceType": "HealthcareService",
            "providedBy": {"reference": "https://x.example/search/Organization/o1/_history/2"},
            "identifier": [{"system": TELEMATIK_ID, "value": "1-1"}],
        },
        "2-2",
    )
    assert rules.direct_owner(resource, "1-1")
    assert rules.direct_owner(resource, "2-2")
    assert not rules.direct_owner(resource, "3-3")
    assert rules.owner_links(resource) == ["Organization/o1"]
    assert rules.owner_extension_ids(rules.with_owner_extension(resource, "4-4")) == {"4-4"}


def test_ml_123874_ldap_base_entry_changes() -> None:
    old = tagged(
        {
            "resourceType": "Organization",
            "name": "A",
            "telecom": [{"system": "other", "value": "cert"}],
        },
        "ldap",
    )
    allowed = {**old, "telecom": [*old["telecom"], {"system": "phone", "value": "1"}]}
    assert rules.forbidden_changes(old, allowed) == []
    assert rules.forbidden_changes(old, {**old, "telecom": []}) == ["Organization.telecom"]
    assert rules.forbidden_changes(old, {**old, "name": "B"}) == ["Organization.name"]
    assert rules.forbidden_changes(old, tagged(old, "owner")) == ["Organization.meta.tag:Origin"]
    owned = tagged({"resourceType": "Organization", "name": "A"}, "owner")
    assert rules.forbidden_changes(owned, {**owned, "name": "B"}) == []


def test_ml_123874_ldap_derived_entry_only_endpoints() -> None:
    old = tagged({"resourceType": "HealthcareService", "name": "A", "endpoint": []}, "ldap")
    assert rules.forbidden_changes(old, {**old, "endpoint": [{"reference": "Endpoint/e"}]}) == []
    assert rules.forbidden_changes(old, {**old, "comment": "x"}) == ["HealthcareService.comment"]
    assert set(rules.LDAP_SYNCED["Organization"]) >= {"name", "alias", "address", "identifier"}


def test_ml_123483_passport_targets() -> None:
    endpoint = {"resourceType": "Endpoint", "address": "matrix:u/a:b.example"}
    assert list(rules.passport_targets(endpoint, NOW)) == ["address"]
    assert list(rules.passport_targets({**endpoint, "period": {"end": "2026-03-01"}}, NOW)) == [
        "address"
    ]
    assert not list(rules.passport_targets({**endpoint, "period": {"end": "2026-02-28"}}, NOW))
    assert not list(
        rules.passport_targets({**endpoint, "period": {"end": "2026-03-01T11:00:00Z"}}, NOW)
    )
    assert not list(rules.passport_targets({**endpoint, "address": "@a:b.example"}, NOW))
    assert not list(rules.passport_targets({**endpoint, "period": {"end": "garbage"}}, NOW))
    practitioner = {
        "resourceType": "Practitioner",
        "telecom": [{"value": "mail@x"}, {"value": "matrix:u/p:b.example"}],
    }
    assert list(rules.passport_targets(practitioner, NOW)) == ["telecom/1"]


def test_ml_123880_directory_types() -> None:
    assert len(DIRECTORY_TYPES) == 6
    assert set(rules.OWNER_LINKS) == DIRECTORY_TYPES


def test_af_10036_services_share_their_organizations_visibility() -> None:
    hidden = frozenset({"Organization/o1"})
    service = {"resourceType": "HealthcareService", "providedBy": {"reference": "Organization/o1"}}
    role = {"resourceType": "PractitionerRole", "organization": {"reference": "Organization/o1"}}
    alone = {"resourceType": "PractitionerRole", "practitioner": {"reference": "Practitioner/p"}}
    for resource in (service, role):
        assert rules.hidden(resource, insured=True, hidden_organizations=hidden)
        assert not rules.hidden(resource, insured=False, hidden_organizations=hidden)
        assert not rules.hidden(resource, insured=True)
    assert not rules.hidden(alone, insured=True, hidden_organizations=hidden)
    location = {
        "resourceType": "Location",
        "managingOrganization": {"reference": "Organization/o1"},
    }
    assert not rules.hidden(location, insured=True, hidden_organizations=hidden)


def test_mxid_server_reads_every_spelling_of_an_mxid() -> None:
    for value in (
        "matrix:u/alice:hs1.example",
        "matrix:u/alice:HS1.Example",
        "Matrix:U/alice:hs1.example",
        "matrix:u/alice:hs1%2Eexample",
        "matrix:u/alice%3Ahs1.example",
        "matrix:u/alice:hs1.example:8448",
        "matrix:u/alice:hs1.example?action=chat",
        "@alice:hs1.example",
    ):
        assert rules.mxid_server(value) == "hs1.example", value
    assert rules.mxid_server("https://hs1.example") is None
    assert rules.mxid_server("tel:+4930") is None


def test_mxid_server_refuses_what_it_cannot_read_unambiguously() -> None:
    for value in (
        "matrix:u/alice",
        "matrix:r/room:hs1.example",
        "matrix:u/alice:hs1.example.",
        "matrix:u/alice:hs1%252Eexample",
        "matrix:u/alice:hs1.example%00",
        "matrix:u/al ice:hs1.example",
        "matrix:u/alice:-hs1.example",
        "matrix:u/alice:hs1.example:99999999",
        "matrix:u/alice:h%C3%B6s.example",
        "@alice",
    ):
        try:
            rules.mxid_server(value)
        except rules.InvalidMxid:
            continue
        raise AssertionError(f"{value!r} was accepted")


def test_published_mxids_of_a_tim_endpoint_and_telecom() -> None:
    endpoint = {
        "resourceType": "Endpoint",
        "connectionType": {"code": rules.TIM_CONNECTION},
        "address": "https://not-an-mxid",
    }
    assert rules.published_mxids(endpoint) == [("Endpoint.address", "https://not-an-mxid")]
    kim = {**endpoint, "connectionType": {"code": "kim"}, "address": "mailto:x@kim"}
    assert rules.published_mxids(kim) == []
    service = {
        "resourceType": "HealthcareService",
        "telecom": [{"value": "@a:b.example"}, {"value": "+49 30"}, "junk"],
    }
    assert rules.published_mxids(service) == [("HealthcareService.telecom", "@a:b.example")]
