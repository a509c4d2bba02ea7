"""AF_10047: the LDAP → FHIR mapping, one test per row of the seed's table (seed 003 §5.1.2)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from timkit.core.fhir import ORIGIN, TELEMATIK_ID
from timkit.directory.validation import validate
from timkit.fhirproxy.ldap.mapping import (
    CRLF,
    Kind,
    LdapEntry,
    MappingError,
    entries_from_json,
    kind_of,
    ldap_owned,
    map_entry,
    merge,
    resource_ids,
    same,
)
from timkit.runtime.demo import LDAP_ENTRIES

ENTRIES = LDAP_ENTRIES
ORG_TYPE = "https://gematik.de/fhir/directory/CodeSystem/OrganizationProfessionOID"
NON_MEDICAL = "urn:oid:1.3.6.1.4.1.19376.3.276.1.5.5"


def samples() -> list[dict[str, Any]]:
    """The test entries (``samples/eGBR`` form): two SMC-B, one HBA."""
    data: list[dict[str, Any]] = json.loads(ENTRIES.read_text())
    return data


def smcb(**changes: Any) -> LdapEntry:
    return LdapEntry.of({**samples()[0], **changes})


def hba(**changes: Any) -> LdapEntry:
    return LdapEntry.of({**samples()[2], **changes})


def certificate_der(name: str = "Pflegestation Marktheidenfeld") -> bytes:
    """A self-signed certificate (DER), as userCertificate holds it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def org_hs(entry: LdapEntry) -> tuple[dict[str, Any], dict[str, Any]]:
    organization, service = map_entry(entry)
    return organization, service


def practitioner(entry: LdapEntry) -> dict[str, Any]:
    (resource,) = map_entry(entry)
    return resource


# --- rows of the table ------------------------------------------------------------------------


def test_af_10047_display_name_maps_to_name() -> None:
    organization, service = org_hs(smcb())
    assert organization["name"] == "Pflegestation Marktheidenfeld"
    assert service["name"] == "Pflegestation Marktheidenfeld"
    assert practitioner(hba())["name"] == [{"text": "Sommer, Greta"}]


def test_af_10047_address_maps_to_postal_work_address() -> None:
    expected = {
        "use": "work",
        "type": "postal",
        "text": CRLF.join(["Esplanade 99", "97823", "Marktheidenfeld", "Bayern", "DE"]),
        "line": ["Esplanade 99"],
        "city": "Marktheidenfeld",
        "state": "Bayern",
        "postalCode": "97823",
        "country": "DE",
    }
    assert org_hs(smcb())[0]["address"] == [expected]
    assert practitioner(hba())["address"][0]["text"] == (
        "Alt-Moabit 59\r\n04574\r\nBreunsdorf\r\nSachsen\r\nDE"
    )


def test_af_10047_address_parts_missing_are_left_out() -> None:
    entry = LdapEntry.of({"telematikID": "10-67.245.1", "street": "Hauptstr. 1", "l": "Ulm"})
    (address,) = org_hs(entry)[0]["address"]
    assert address == {
        "use": "work",
        "type": "postal",
        "text": "Hauptstr. 1\r\nUlm",
        "line": ["Hauptstr. 1"],
        "city": "Ulm",
    }
    bare = LdapEntry.of({"telematikID": "10-67.245.1"})
    assert "address" not in org_hs(bare)[0]


def test_af_10047_smcb_organization_maps_to_alias_hba_organization_not_mapped() -> None:
    assert org_hs(smcb())[0]["alias"] == ["Pflegestation Marktheidenfeld gGmbH"]
    assert "Frauenheilkunde" not in json.dumps(practitioner(hba()))


def test_af_10047_smcb_specialization_maps_to_healthcare_service_specialty() -> None:
    _, service = org_hs(smcb())
    assert service["specialty"] == [
        {"coding": [{"system": NON_MEDICAL, "code": "PFL", "display": "Pflege und Betreuung"}]},
        {"coding": [{"system": NON_MEDICAL, "code": "ALT", "display": "Altenpflege"}]},
    ]
    assert service["providedBy"] == {"reference": f"Organization/{org_hs(smcb())[0]['id']}"}


def test_af_10047_specialization_unknown_code_has_no_display_and_bad_values_are_skipped() -> None:
    entry = smcb(
        specialization=[
            "urn:psc:1.2.3.4:XYZ",  # unknown code system: mapped without display
            "urn:as:1.2.276.0.76.5.114:010",  # an HBA specialisation on an SMC-B: skipped
            "Allgemeinmedizin",  # not a URN: skipped
        ]
    )
    _, service = org_hs(entry)
    assert service["specialty"] == [{"coding": [{"system": "urn:oid:1.2.3.4", "code": "XYZ"}]}]


def test_af_10047_hba_specialization_maps_to_qualification() -> None:
    entry = hba(specialization=["urn:as:1.2.276.0.76.5.114:010", "urn:psc:1.2.3:X"])
    codings = [q["code"]["coding"][0] for q in practitioner(entry)["qualification"]]
    assert {
        "system": "urn:oid:1.2.276.0.76.5.114",
        "code": "010",
        "display": "FA Allgemeinmedizin",
    } in codings
    assert all(c["code"] != "X" for c in codings)


def test_af_10047_user_certificate_maps_to_telecom_other_pem() -> None:
    der = certificate_der()
    expected_pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    for value in (der, base64.b64encode(der).decode(), expected_pem.decode()):
        entry = smcb(**{"userCertificate;binary": value})
        telecom = org_hs(entry)[0]["telecom"]
        assert telecom == [{"system": "other", "value": expected_pem.decode()}]
        x509.load_pem_x509_certificate(telecom[0]["value"].encode())
    assert practitioner(hba(userCertificate=[der, "not base64!"]))["telecom"] == [
        {"system": "other", "value": expected_pem.decode()}
    ]


def test_af_10047_telematik_id_maps_to_identifier() -> None:
    organization, service = org_hs(smcb())
    identifier = [{"system": TELEMATIK_ID, "value": "10-67.245.91000001"}]
    assert organization["identifier"] == identifier
    assert service["identifier"] == identifier
    assert practitioner(hba())["identifier"] == [
        {"system": TELEMATIK_ID, "value": "10-67.235.91000003"}
    ]


def test_af_10047_smcb_profession_oid_maps_to_organization_type() -> None:
    organization, _ = org_hs(smcb())
    assert organization["type"] == [
        {
            "coding": [
                {
                    "system": ORG_TYPE,
                    "code": "1.2.276.0.76.4.245",
                    "display": "Betriebsstätte Gesundheits-, Kranken- und Altenpflege",
                }
            ]
        }
    ]


def test_af_10047_hba_profession_oid_maps_to_qualification() -> None:
    codings = [q["code"]["coding"][0] for q in practitioner(hba())["qualification"]]
    assert codings[0] == {
        "system": "https://gematik.de/fhir/directory/CodeSystem/PractitionerProfessionOID",
        "code": "1.2.276.0.76.4.235",
        "display": "Hebamme",
    }


@pytest.mark.parametrize(
    "attribute",
    ["givenName", "sn", "cn", "title", "otherName", "domainID", "holder", "mail",
     "maxKOMLEadr", "entryType", "usage", "description", "dataFromAuthority", "changeDateTime"],
)  # fmt: skip
def test_af_10047_unmapped_attributes_do_not_appear(attribute: str) -> None:
    marker = "Unmapped-Marker-4711"
    for entry in (smcb(**{attribute: marker}), hba(**{attribute: marker})):
        assert marker not in json.dumps(map_entry(entry))


def test_af_10047_active_false_maps_to_inactive() -> None:
    assert org_hs(smcb())[0]["active"] is True
    assert all(r["active"] is False for r in map_entry(smcb(active="FALSE")))
    assert practitioner(hba(active=False))["active"] is False


# --- resources, ids, kinds ------------------------------------------------------------------


def test_af_10047_resources_are_origin_ldap_and_valid_directory_resources() -> None:
    for entry in entries_from_json(ENTRIES.read_bytes()):
        for resource in map_entry(entry):
            assert resource["meta"]["tag"] == [{"system": ORIGIN, "code": "ldap"}]
            validate(resource)


def test_af_10047_ids_are_derived_from_the_telematik_id() -> None:
    organization, service = org_hs(smcb())
    assert (organization["id"], service["id"]) == (
        "ldap-org-10-67.245.91000001",
        "ldap-hs-10-67.245.91000001",
    )
    assert map_entry(smcb(displayName="Renamed"))[0]["id"] == organization["id"]
    odd = resource_ids("3-SMC-B-Testkarte-883110000116873/ü", Kind.SMCB)
    assert odd[0].startswith("Organization/ldap-org-")
    assert len(odd[0].split("/")[1]) <= 64
    assert odd == resource_ids("3-SMC-B-Testkarte-883110000116873/ü", Kind.SMCB)


def test_af_10047_kind_by_personal_entry_profession_and_telematik_id_pattern() -> None:
    assert kind_of(LdapEntry.of({"telematikID": "1-20.1", "personalEntry": True})) is Kind.HBA
    assert kind_of(LdapEntry.of({"telematikID": "1-1.1", "personalEntry": "FALSE"})) is Kind.SMCB
    by_oid = LdapEntry.of({"telematikID": "x", "professionOID": "1.2.276.0.76.4.30"})
    assert kind_of(by_oid) is Kind.HBA
    assert kind_of(LdapEntry.of({"telematikID": "10-67.236.1"})) is Kind.HBA
    assert kind_of(LdapEntry.of({"telematikID": "10-67.247.1"})) is Kind.SMCB
    assert kind_of(LdapEntry.of({"telematikID": "whatever"})) is Kind.SMCB


def test_af_10047_attribute_names_are_case_insensitive_with_ldap_short_names() -> None:
    entry = LdapEntry.of(
        {
            "TELEMATIKID": [b"10-67.245.2"],
            "DisplayName": [b"Praxis K\xc3\xb6nig"],
            "street": [b"Weg 1"],
            "l": [b"Hof"],
            "st": [b"Bayern"],
        },
        dn="uid=x,dc=data,dc=vzd",
    )
    organization, _ = org_hs(entry)
    assert organization["name"] == "Praxis König"
    assert organization["address"][0]["text"] == "Weg 1\r\nHof\r\nBayern"


def test_af_10047_entry_without_telematik_id_is_refused() -> None:
    with pytest.raises(MappingError):
        LdapEntry.of({"displayName": "no id"})


# --- merge with owner data ------------------------------------------------------------------


def test_af_10047_merge_replaces_ldap_elements_and_keeps_owner_elements() -> None:
    organization, _ = org_hs(smcb())
    stored = json.loads(json.dumps(organization))
    stored["meta"] |= {"versionId": "3", "lastUpdated": "2025-01-01T00:00:00Z"}
    stored["telecom"] = [{"system": "phone", "value": "09391 1234"}]
    stored["endpoint"] = [{"reference": "Endpoint/owner-ep"}]
    stored["name"] = "Old name"
    merged = merge(stored, map_entry(smcb(displayName="New name"))[0])
    assert merged["name"] == "New name"
    assert merged["endpoint"] == [{"reference": "Endpoint/owner-ep"}]
    assert merged["telecom"] == [{"system": "phone", "value": "09391 1234"}]
    assert "versionId" not in merged["meta"]
    assert ldap_owned(merged) == ldap_owned(map_entry(smcb(displayName="New name"))[0])
    assert same(stored | {"name": "New name"}, merged)
    assert not same(stored, merged)
