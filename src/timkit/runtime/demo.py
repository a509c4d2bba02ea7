"""The demo data of the local federation: directory entries, smartcards, KIM entries.

Directory: for every configured Messenger-Service the directory gets the organisation's
entry: an Organization, its Location, a HealthcareService and a TI-M Endpoint
``matrix:u/empfang:<domain>``, so TI-M clients of the local federation find each other.
Synthetic practices and practitioners (:func:`timkit.directory.demo.generate.generate`, fixed
seed) make searches look like the real directory. The content is deterministic, so the
directory's idempotent seed load changes nothing on restart.

Organisations (:func:`demo_organisations`): the configured services grouped by their
``organisation`` name; each gets a virtual SMC-B at the IDP stand-in (:func:`cards_document`)
with the TelematikID of its first service, an institution profession OID and a KIM address
(also in the Registrierungs-Dienst's KIM directory, :func:`kim_entries`). ``timkit up``
onboards them through the Registrierungs-Dienst with these cards. One more SMC-B,
:data:`SPARE_ORGANISATION`, belongs to an organisation with a directory entry but no
configured service (for onboarding by hand or by tests), and one HBA card (:data:`HBA_CARD`)
shows that a person's card cannot register an organisation.

Practitioner (:func:`practitioner_entries`): the HBA's holder has a Practitioner and a
PractitionerRole (base entries, Origin ``ldap``) with the card's TelematikID, working at the
first configured organisation, so that they can sign in at the FHIR-Proxy with the HBA and
publish their MXID on their own PractitionerRole (AF_10058).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from timkit.core.fhir import CONNECTION_TYPE, ORIGIN, PAYLOAD_TYPE, PROFILE, TELEMATIK_ID
from timkit.directory.demo.generate import PRACTITIONER_PROFESSION, generate
from timkit.runtime.config import MessengerServiceConfig

LDAP_ENTRIES = Path(__file__).parent / "ldap-entries.json"
"""Base entries of the local run's stand-in VZD-LDAP-Directory (``samples/eGBR`` form); the
FHIR-Proxy applies them at start-up as its LDAP sync would (``ldap.seed_file``)."""

DEMO_ORGANIZATIONS = 20
DEMO_PRACTITIONERS = 30


def _meta(resource_type: str, origin: str) -> dict[str, Any]:
    return {
        "tag": [{"system": ORIGIN, "code": origin}],
        "profile": [PROFILE.format(resource_type)],
    }


def telematik_id(service: MessengerServiceConfig) -> str:
    """The demo TelematikID of the organisation running ``service`` (stable per domain)."""
    return f"1-{zlib.crc32(service.domain.encode()):010d}"


@dataclass(frozen=True)
class DemoOrganisation:
    """An organisation of the local run and its virtual SMC-B.

    Attributes:
        key: the SMC-B's card id and the stem of its Org-Admin's username (first label of
            its first service's domain).
        name: the organisation's name (``organizationName`` of the card).
        telematik_id: its TelematikID (that of its first service's directory entry).
        profession_oid: an institution profession OID fitting the name (practice, clinic,
            pharmacy).
        kim: its KIM address.
        domains: its configured Messenger-Services' domains (empty for the spare one).
    """

    key: str
    name: str
    telematik_id: str
    profession_oid: str
    kim: str
    domains: tuple[str, ...]


PRACTICE_OID = "1.2.276.0.76.4.50"
CLINIC_OID = "1.2.276.0.76.4.53"
PHARMACY_OID = "1.2.276.0.76.4.54"
KIM_DOMAIN = "kim.tim.test"

SPARE_ORGANISATION = DemoOrganisation(
    key="apotheke-am-markt",
    name="Apotheke am Markt",
    telematik_id="3-SMCB-APOTHEKE-AM-MARKT",
    profession_oid=PHARMACY_OID,
    kim=f"apotheke-am-markt@{KIM_DOMAIN}",
    domains=(),
)
"""An organisation with a directory entry and an SMC-B but no configured service."""

HBA_CARD: dict[str, Any] = {
    "id": "hba-dr-demo",
    "type": "HBA",
    "telematikID": "1-1-ARZT-DEMO01",
    "professionOID": "1.2.276.0.76.4.30",
    "given_name": "Clara",
    "family_name": "Sonnenschein",
    "kim": f"clara.sonnenschein@{KIM_DOMAIN}",
}
"""A physician's HBA: the Registrierungs-Dienst refuses it for an organisation (ML-128759)."""


def _profession_oid(name: str) -> str:
    lowered = name.lower()
    if "klinik" in lowered or "krankenhaus" in lowered:
        return CLINIC_OID
    if "apotheke" in lowered:
        return PHARMACY_OID
    return PRACTICE_OID


def demo_organisations(services: Sequence[MessengerServiceConfig]) -> list[DemoOrganisation]:
    """The configured services grouped by organisation name, in configuration order."""
    grouped: dict[str, list[MessengerServiceConfig]] = {}
    for service in services:
        grouped.setdefault(service.organisation, []).append(service)
    organisations = []
    for name, members in grouped.items():
        key = members[0].domain.split(".")[0]
        organisations.append(
            DemoOrganisation(
                key=key,
                name=name,
                telematik_id=telematik_id(members[0]),
                profession_oid=_profession_oid(name),
                kim=f"{key}@{KIM_DOMAIN}",
                domains=tuple(s.domain for s in members),
            )
        )
    return organisations


def spare_organisations(services: Sequence[MessengerServiceConfig]) -> list[DemoOrganisation]:
    """:data:`SPARE_ORGANISATION` unless a configured organisation uses its key or name."""
    taken = {(o.key, o.name) for o in demo_organisations(services)}
    spare = SPARE_ORGANISATION
    if any(spare.key == key or spare.name == name for key, name in taken):
        return []
    return [spare]


def cards_document(services: Sequence[MessengerServiceConfig]) -> dict[str, Any]:
    """The IDP stand-in's cards file: one SMC-B per organisation, the spare SMC-B, the HBA."""
    cards: list[dict[str, Any]] = [
        {
            "id": org.key,
            "type": "SMC-B",
            "telematikID": org.telematik_id,
            "professionOID": org.profession_oid,
            "organizationName": org.name,
            "kim": org.kim,
        }
        for org in [*demo_organisations(services), *spare_organisations(services)]
    ]
    return {"cards": [*cards, HBA_CARD]}


def kim_entries(services: Sequence[MessengerServiceConfig]) -> list[dict[str, Any]]:
    """The Registrierungs-Dienst's KIM directory (LDAP attribute names) for every SMC-B."""
    return [
        {
            "telematikID": org.telematik_id,
            "mail": [org.kim],
            "professionOID": org.profession_oid,
            "displayName": org.name,
        }
        for org in [*demo_organisations(services), *spare_organisations(services)]
    ]


def _spare_entries(org: DemoOrganisation) -> list[dict[str, Any]]:
    """Organization and Location of an organisation without a Messenger-Service."""
    address = {
        "line": ["Marktplatz 1"],
        "city": "Berlin",
        "postalCode": "10178",
        "state": "Berlin",
        "country": "DE",
    }
    return [
        {
            "resourceType": "Organization",
            "id": f"{org.key}-org",
            "meta": _meta("Organization", "ldap"),
            "identifier": [{"system": TELEMATIK_ID, "value": org.telematik_id}],
            "active": True,
            "name": org.name,
            "address": [address],
        },
        {
            "resourceType": "Location",
            "id": f"{org.key}-loc",
            "meta": _meta("Location", "ldap"),
            "name": org.name,
            "address": address,
            "managingOrganization": {"reference": f"Organization/{org.key}-org"},
        },
    ]


def service_entries(service: MessengerServiceConfig) -> list[dict[str, Any]]:
    """Organization, Location, Endpoint and HealthcareService of one Messenger-Service."""
    key = service.domain.split(".")[0]
    org, loc, ep, hs = (f"{key}-{kind}" for kind in ("org", "loc", "ep", "hs"))
    address = {
        "line": ["Friedrichstraße 136"],
        "city": "Berlin",
        "postalCode": "10117",
        "state": "Berlin",
        "country": "DE",
    }
    return [
        {
            "resourceType": "Organization",
            "id": org,
            "meta": _meta("Organization", "ldap"),
            "identifier": [{"system": TELEMATIK_ID, "value": telematik_id(service)}],
            "active": True,
            "name": service.organisation,
            "address": [address],
        },
        {
            "resourceType": "Location",
            "id": loc,
            "meta": _meta("Location", "ldap"),
            "name": service.organisation,
            "address": address,
            "position": {"latitude": 52.5208, "longitude": 13.3885},
            "managingOrganization": {"reference": f"Organization/{org}"},
        },
        {
            "resourceType": "Endpoint",
            "id": ep,
            "meta": _meta("Endpoint", "owner"),
            "status": "active",
            "connectionType": {
                "system": CONNECTION_TYPE,
                "code": "tim",
            },
            "name": f"Empfang {service.organisation}",
            "managingOrganization": {"reference": f"Organization/{org}"},
            "payloadType": [
                {
                    "coding": [
                        {
                            "system": PAYLOAD_TYPE,
                            "code": "tim-chat",
                        }
                    ]
                }
            ],
            "address": f"matrix:u/empfang:{service.domain}",
        },
        {
            "resourceType": "HealthcareService",
            "id": hs,
            "meta": _meta("HealthcareService", "ldap"),
            "providedBy": {"reference": f"Organization/{org}"},
            "location": [{"reference": f"Location/{loc}"}],
            "endpoint": [{"reference": f"Endpoint/{ep}"}],
            "name": service.organisation,
        },
    ]


def practitioner_entries(services: Sequence[MessengerServiceConfig]) -> list[dict[str, Any]]:
    """Practitioner and PractitionerRole of :data:`HBA_CARD`'s holder (no Endpoint yet).

    The role belongs to the first configured service's Organization and HealthcareService,
    when there is one; its owner link is the Practitioner with the card's TelematikID.
    """
    key = str(HBA_CARD["id"])
    given, family = str(HBA_CARD["given_name"]), str(HBA_CARD["family_name"])
    practitioner = f"{key}-pract"
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": f"{key}-role",
        "meta": _meta("PractitionerRole", "ldap"),
        "active": True,
        "practitioner": {"reference": f"Practitioner/{practitioner}"},
    }
    if services:
        employer = services[0].domain.split(".")[0]
        role["organization"] = {"reference": f"Organization/{employer}-org"}
        role["healthcareService"] = [{"reference": f"HealthcareService/{employer}-hs"}]
    return [
        {
            "resourceType": "Practitioner",
            "id": practitioner,
            "meta": _meta("Practitioner", "ldap"),
            "identifier": [{"system": TELEMATIK_ID, "value": HBA_CARD["telematikID"]}],
            "active": True,
            "name": [
                {
                    "use": "official",
                    "text": f"Dr. med. {given} {family}",
                    "family": family,
                    "given": [given],
                    "prefix": ["Dr. med."],
                }
            ],
            "qualification": [
                {
                    "code": {
                        "coding": [
                            {
                                "system": PRACTITIONER_PROFESSION,
                                "code": HBA_CARD["professionOID"],
                                "display": "Ärztin/Arzt",
                            }
                        ]
                    }
                }
            ],
        },
        role,
    ]


def demo_resources(services: Sequence[MessengerServiceConfig]) -> Iterator[dict[str, Any]]:
    """The whole demo data set (see the module docstring)."""
    for service in services:
        yield from service_entries(service)
    for spare in spare_organisations(services):
        yield from _spare_entries(spare)
    yield from practitioner_entries(services)
    yield from generate(DEMO_ORGANIZATIONS, DEMO_PRACTITIONERS, seed=1)


def write_demo_data(path: Path, services: Sequence[MessengerServiceConfig]) -> Path:
    """Write the demo data set as NDJSON to ``path`` (only when its content changed)."""
    content = b"".join(orjson.dumps(r) + b"\n" for r in demo_resources(services))
    if not path.exists() or path.read_bytes() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return path
