"""Realistic synthetic VZD-FHIR-Directory data, streamed as FHIR R4 JSON dicts.

Contract of :func:`generate` (``organizations`` units of one kind, ``practitioners`` of the
other, ``seed``):

* **Count** - every unit yields exactly four resources, so the stream holds
  ``Shape(organizations, practitioners).total()`` resources.

  - organisation unit ``n``: ``Organization/org-<n>``, ``Location/loc-<n>``,
    ``Endpoint/ep-org-<n>`` (TI-M, ``matrix:u/<function>:<org-domain>``) and
    ``HealthcareService/hs-<n>`` (``providedBy``, ``location``, ``endpoint``);
  - practitioner unit ``n``: ``Practitioner/pract-<n>``, ``Location/loc-pract-<n>``,
    ``Endpoint/ep-pract-<n>`` (personal MXID) and ``PractitionerRole/role-<n>``
    (``practitioner``, ``location``, ``endpoint``; about 60 % also ``organization`` and
    ``healthcareService`` of an organisation yielded before).

  ``<n>`` counts from 1, zero-padded to six digits. Units of both kinds are interleaved in
  proportion (an organisation unit first), so any prefix of the stream is a representative
  sample, and every ``reference`` points at a resource yielded earlier.
* **Shape of the data** - as gematik's api-vzd 1.1.1 examples and the test directory:
  ``meta.profile`` ``…/StructureDefinition/<Type>Directory``, ``meta.tag`` Origin ``ldap``
  (``owner`` on the TI-M Endpoints, which their owners register), TelematikIDs
  (``https://gematik.de/fhir/sid/telematik-id``) following the card issuers' patterns
  (gemILF_Pflege_VZD) and unique, ``Organization.type`` / ``Practitioner.qualification`` from
  the OrganizationProfessionOID / PractitionerProfessionOID code systems, chosen consistently
  with the organisation's name and the practitioner's employer. Names, streets, cities (postal
  code, state, dialling code, coordinates) are German and real; cities are weighted by
  population. About 2 % of organisations and practitioners are ``active: false``.
* **Determinism** - the output is a function of the arguments alone (one
  ``random.Random(seed)``, no global state).
* **Ownership** - every yielded dict and everything mutable in it is new; the caller may
  mutate it. Only immutable values (strings, numbers) are shared.
* **Speed** - a few microseconds per resource: constant parts are precomputed, resources are
  built as literals.
"""

from __future__ import annotations

import json
import random
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import accumulate
from math import sqrt
from typing import Any, Generic, TypeVar

from timkit.core.fhir import (
    CONNECTION_TYPE,
    ENDPOINT_PROFILE,
    HEALTHCARE_SERVICE_PROFILE,
    LOCATION_PROFILE,
    ORGANIZATION_PROFILE,
    ORIGIN,
    PAYLOAD_TYPE,
    PRACTITIONER_PROFILE,
    PRACTITIONER_ROLE_PROFILE,
    TELEMATIK_ID,
)

T = TypeVar("T")
Resource = dict[str, Any]

# --- canonical URLs ---------------------------------------------------------------------------

ORGANIZATION_PROFESSION = "https://gematik.de/fhir/directory/CodeSystem/OrganizationProfessionOID"
PRACTITIONER_PROFESSION = "https://gematik.de/fhir/directory/CodeSystem/PractitionerProfessionOID"
MEDICAL_SPECIALTY = "urn:oid:1.3.6.1.4.1.19376.3.276.1.5.4"  # ärztliche Fachrichtungen
NON_MEDICAL_SPECIALTY = "urn:oid:1.3.6.1.4.1.19376.3.276.1.5.5"  # nicht-ärztliche
SPECIALIST_QUALIFICATION = "urn:oid:1.2.276.0.76.5.114"  # KBV Facharzt-/Schwerpunkt-Kennzeichen
PHARMACY_TYPE = "https://gematik.de/fhir/directory/CodeSystem/PharmacyTypeCS"
PHARMACY_SPECIALTY = "https://gematik.de/fhir/directory/CodeSystem/PharmacyHealthcareSpecialtyCS"
SERVICE_SPECIALTY = "https://gematik.de/fhir/directory/CodeSystem/HealthcareServiceSpecialtyCS"

MATRIX_DOMAIN = "tim.test"  # reserved TLD: the homeserver domains are synthetic
RESOURCES_PER_UNIT = 4
INACTIVE_SHARE = 0.02
EMPLOYED_SHARE = 0.6  # practitioners linked to an organisation (when there is one)
_RECENT_ORGANIZATIONS = 1024  # practitioners pick their employer among the last ones
_SERIAL_DIGITS = 8

# --- German reference data (data/*.json) ---------------------------------------------------------

_DATA = resources.files(__package__) / "data"


def _table(name: str) -> Any:
    """The JSON document ``data/<name>.json`` shipped with this package."""
    return json.loads((_DATA / f"{name}.json").read_text("utf-8"))


_NAMES = _table("names")
FAMILY_NAMES: tuple[str, ...] = tuple(_NAMES["family"])
FEMALE_GIVEN_NAMES: tuple[str, ...] = tuple(_NAMES["female_given"])
MALE_GIVEN_NAMES: tuple[str, ...] = tuple(_NAMES["male_given"])
_PLACES = _table("places")
STREETS: tuple[str, ...] = tuple(_PLACES["streets"])
_PHARMACY_EMBLEMS: tuple[str, ...] = tuple(_PLACES["pharmacy_emblems"])
_LANDMARKS: tuple[str, ...] = tuple(_PLACES["landmarks"])
_HOSPITAL_NAMES: tuple[str, ...] = tuple(_PLACES["hospital_names"])
_QUARTERS: tuple[str, ...] = tuple(_PLACES["quarters"])

# State (AddressStateVS = CodeSystem Region) and KV region code per Kassenärztliche Vereinigung
# (WL: KV Westfalen-Lippe, NO: KV Nordrhein).
_REGIONS: dict[str, tuple[str, str]] = {
    key: (state, kv) for key, (state, kv) in _table("regions").items()
}

# name, region, postal codes (first, last), latitude, longitude, population (thousands), dialling
_CITY_ROWS: tuple[tuple[str, str, int, int, float, float, int, str], ...] = tuple(
    tuple(row) for row in _table("cities")["rows"]
)


# --- derived tables ------------------------------------------------------------------------------

_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ş": "s"})
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """``text`` as a DNS label / Matrix localpart: ``Dr. Jörg Weiß`` → ``dr-joerg-weiss``."""
    return _NOT_SLUG.sub("-", text.lower().translate(_UMLAUTS)).strip("-")


@dataclass(frozen=True, slots=True)
class City:
    """A real German city with what an address there needs."""

    name: str
    state: str  # CodeSystem Region, e.g. "Nordrhein-Westfalen"
    region: str  # two-digit KV region, part of TelematikIDs
    first_postal_code: int
    last_postal_code: int
    latitude: float
    longitude: float
    population: int  # thousands; the city's weight
    dialling_code: str
    slug: str
    radius: float  # degrees of jitter around the centre


def _city(row: tuple[str, str, int, int, float, float, int, str]) -> City:
    name, region, first, last, latitude, longitude, population, dialling = row
    state, kv = _REGIONS[region]
    radius = 0.01 + 0.0025 * sqrt(population)  # Berlin ±0.16°, a town ±0.03°
    return City(
        name, state, kv, first, last, latitude, longitude, population, dialling, slug(name), radius
    )


CITIES: tuple[City, ...] = tuple(_city(row) for row in _CITY_ROWS)


@dataclass(frozen=True, slots=True)
class _Weighted(Generic[T]):
    """Items with weights, drawn by bisecting the cumulative weights."""

    items: tuple[T, ...]
    bounds: tuple[float, ...]  # cumulative weights but the last: a bisect is always an index
    total: float

    @classmethod
    def of(cls, pairs: Sequence[tuple[T, float]]) -> _Weighted[T]:
        cumulative = tuple(accumulate(weight for _, weight in pairs))
        return cls(tuple(item for item, _ in pairs), cumulative[:-1], cumulative[-1])


class _Draw:
    """The random choices of one run, all from one ``random.Random(seed)``."""

    __slots__ = ("random",)

    def __init__(self, seed: int) -> None:
        # Synthetic test data, not secrets: a seeded PRNG is the point.
        self.random = random.Random(seed).random  # noqa: S311

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]

    def weighted(self, table: _Weighted[T]) -> T:
        return table.items[bisect_right(table.bounds, self.random() * table.total)]

    def chance(self, probability: float) -> bool:
        return self.random() < probability

    def number(self, first: int, last: int) -> int:
        return first + int(self.random() * (last - first + 1))


_CITY_TABLE = _Weighted.of([(city, city.population) for city in CITIES])
_SLUGS: dict[str, str] = {
    name: slug(name)
    for names in (FAMILY_NAMES, FEMALE_GIVEN_NAMES, MALE_GIVEN_NAMES, _PHARMACY_EMBLEMS)
    for name in names
}
_SLUGS.update((name, slug(name)) for name in (*_LANDMARKS, *_HOSPITAL_NAMES, *_QUARTERS))


# --- professions, services and kinds of organisation ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Coding:
    """An immutable FHIR Coding; :meth:`json` makes a fresh dict of it."""

    system: str
    code: str
    display: str

    def json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True, slots=True)
class _Service:
    """What a HealthcareService offers: its type and what staff there are qualified as."""

    type: Coding
    practice: str  # "Praxis für Kinder- und Jugendmedizin", "Klinik für Urologie"
    qualification: Coding | None = None  # Facharzt coding of physicians working there
    specialties: tuple[tuple[Coding, float], ...] = ()  # optional specialty codings


_VACCINATION = Coding(SERVICE_SPECIALTY, "impfung", "Impfung")
_GENERAL_PRACTICE = _Service(
    Coding(MEDICAL_SPECIALTY, "ALLG", "Allgemeinmedizin"),
    "Praxis für Allgemeinmedizin",
    Coding(SPECIALIST_QUALIFICATION, "010", "FA Allgemeinmedizin"),
    ((_VACCINATION, 0.6),),
)
# HealthcareService.type (ärztliche Fachrichtung), name of such a practice or department, and
# the Facharzt qualification (KBV) of physicians working there; with weights.
_MEDICAL_SERVICES = _table("medical_services")
_PRACTICE_ROWS: tuple[tuple[str, str, str, str, str, float], ...] = tuple(
    tuple(row) for row in _MEDICAL_SERVICES["practices"]
)
_HOSPITAL_ROWS: tuple[tuple[str, str, str, str, str, float], ...] = tuple(
    tuple(row) for row in _MEDICAL_SERVICES["hospitals"]
)


def _medical_services(
    rows: Sequence[tuple[str, str, str, str, str, float]], *extra: tuple[_Service, float]
) -> _Weighted[_Service]:
    services = [
        (
            _Service(
                Coding(MEDICAL_SPECIALTY, code, display),
                practice or f"Praxis für {display}",
                Coding(SPECIALIST_QUALIFICATION, qualification, qualification_display),
            ),
            weight,
        )
        for code, display, qualification, qualification_display, practice, weight in rows
    ]
    return _Weighted.of([*extra, *services])


_PRACTICE_SERVICES = _medical_services(_PRACTICE_ROWS, (_GENERAL_PRACTICE, 36))
_HOSPITAL_SERVICES = _medical_services(_HOSPITAL_ROWS)


def _services(*services: tuple[_Service, float]) -> _Weighted[_Service]:
    return _Weighted.of(services)


def _plain(system: str, code: str, display: str, practice: str) -> _Service:
    return _Service(Coding(system, code, display), practice)


_DENTAL_SERVICES = _services(
    (_plain(MEDICAL_SPECIALTY, "MZKH", "Zahnmedizin", "Zahnarztpraxis"), 80),
    (_plain(MEDICAL_SPECIALTY, "ORAL", "Oralchirurgie", "Praxis für Oralchirurgie"), 6),
    (_plain(MEDICAL_SPECIALTY, "KIEF", "Kieferorthopädie", "Praxis für Kieferorthopädie"), 10),
    (_plain(MEDICAL_SPECIALTY, "PARO", "Parodontologie", "Praxis für Parodontologie"), 4),
)
_PHARMACY_SERVICES = _services(
    (
        _Service(
            Coding(PHARMACY_TYPE, "offizin-apotheke", "Offizin-Apotheke"),
            "Apotheke",
            specialties=(
                (Coding(PHARMACY_SPECIALTY, "10", "Handverkauf"), 1.0),
                (Coding(PHARMACY_SPECIALTY, "20", "Nacht- und Notdienst"), 0.3),
                (Coding(PHARMACY_SPECIALTY, "30", "Botendienst"), 0.5),
                (_VACCINATION, 0.2),
            ),
        ),
        1,
    ),
)
_PSYCHOTHERAPY_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "PST", "Psychotherapie", "Praxis für Psychotherapie"), 1)
)
_CARE_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "PFL", "Pflege und Betreuung", "Pflegedienst"), 3),
    (_plain(NON_MEDICAL_SPECIALTY, "ALT", "Altenpflege", "Seniorenpflege"), 2),
)
_ERGO_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "ERG", "Ergotherapie", "Praxis für Ergotherapie"), 1)
)
_SPEECH_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "SPR", "Sprachtherapie", "Praxis für Logopädie"), 1)
)
_PODIATRY_SERVICES = _services(
    (_plain(NON_MEDICAL_SPECIALTY, "POD", "Podologie", "Podologische Praxis"), 1)
)


@dataclass(frozen=True, slots=True)
class _Profession:
    """A PractitionerProfessionOID with how its members are named and identified."""

    qualification: Coding
    telematik_id: str  # format with {region} and {serial}
    titles: _Weighted[str]  # name prefix; "" for none
    workplace: str  # name of a workplace without an organisation: "<workplace> <person>"
    domain: str  # homeserver label of members without an organisation
    services: _Weighted[_Service] | None = None  # Facharzt qualifications, physicians only


def _titles(*pairs: tuple[str, float]) -> _Weighted[str]:
    return _Weighted.of(pairs)


_NO_TITLE = _titles(("", 1))


def _profession(
    code: str,
    display: str,
    telematik_id: str,
    workplace: str,
    domain: str,
    titles: _Weighted[str] = _NO_TITLE,
    services: _Weighted[_Service] | None = None,
) -> _Profession:
    coding = Coding(PRACTITIONER_PROFESSION, code, display)
    return _Profession(coding, telematik_id, titles, workplace, domain, services)


# TelematikID patterns per card issuer (gemILF_Pflege_VZD, Tabelle_TID_Mapping): BÄK HBA 1-1…,
# BZÄK 2-1…, pharmacists 3-<kammer>.3…, psychotherapists 4-1…, eGBR HBA 10-67.<profession>…
PHYSICIAN = _profession(
    "1.2.276.0.76.4.30", "Ärztin/Arzt", "1-1.{region}.{serial}", "Praxis", "aerzte",
    _titles(("Dr. med.", 52), ("Prof. Dr. med.", 3), ("Dr.", 5), ("", 40)),
    _PRACTICE_SERVICES,
)  # fmt: skip
DENTIST = _profession(
    "1.2.276.0.76.4.31", "Zahnärztin/Zahnarzt", "2-1.{region}.{serial}", "Zahnarztpraxis",
    "zahnaerzte", _titles(("Dr. med. dent.", 50), ("Dr.", 5), ("", 45)),
)  # fmt: skip
PHARMACIST = _profession(
    "1.2.276.0.76.4.32", "Apotheker/-in", "3-{region}.3.{serial}", "Apotheke", "apotheken",
    _titles(("Dr. rer. nat.", 8), ("", 92)),
)  # fmt: skip
PSYCHOTHERAPIST = _profession(
    "1.2.276.0.76.4.46", "Psychologische/-r Psychotherapeut/-in", "4-1.{region}.{serial}",
    "Psychotherapeutische Praxis", "psychotherapie", _titles(("Dr. phil.", 12), ("", 88)),
)  # fmt: skip
CHILD_PSYCHOTHERAPIST = _profession(
    "1.2.276.0.76.4.47", "Kinder- und Jugendlichenpsychotherapeut/-in", "4-1.{region}.{serial}",
    "Psychotherapeutische Praxis", "psychotherapie", _titles(("Dr. phil.", 8), ("", 92)),
)  # fmt: skip
NURSE = _profession(
    "1.2.276.0.76.4.232",
    "Gesundheits- und Krankenpfleger/-in, Gesundheits- und Kinderkrankenpfleger/-in",
    "10-67.232.{serial}", "Pflegedienst", "pflege",
)  # fmt: skip
GERIATRIC_NURSE = _profession(
    "1.2.276.0.76.4.233", "Altenpfleger/-in", "10-67.233.{serial}", "Pflegedienst", "pflege"
)
CARE_PROFESSIONAL = _profession(
    "1.2.276.0.76.4.234", "Pflegefachfrauen und Pflegefachmänner", "10-67.234.{serial}",
    "Pflegedienst", "pflege",
)  # fmt: skip
MIDWIFE = _profession(
    "1.2.276.0.76.4.235", "Hebamme", "10-67.235.{serial}", "Hebammenpraxis", "gesundheitsberufe"
)
PHYSIOTHERAPIST = _profession(
    "1.2.276.0.76.4.236", "Physiotherapeut/-in", "10-67.236.{serial}", "Physiotherapie",
    "gesundheitsberufe",
)  # fmt: skip
OCCUPATIONAL_THERAPIST = _profession(
    "1.2.276.0.76.4.274", "Ergotherapeut/-in", "10-67.274.{serial}", "Ergotherapie",
    "gesundheitsberufe",
)  # fmt: skip
SPEECH_THERAPIST = _profession(
    "1.2.276.0.76.4.275", "Logopäde/Logopädin", "10-67.275.{serial}", "Logopädie",
    "gesundheitsberufe",
)  # fmt: skip
PODIATRIST = _profession(
    "1.2.276.0.76.4.276", "Podologe/Podologin", "10-67.276.{serial}", "Podologie",
    "gesundheitsberufe",
)  # fmt: skip

_PROFESSIONS = _Weighted.of(
    [
        (PHYSICIAN, 50), (DENTIST, 14), (PHARMACIST, 10), (PSYCHOTHERAPIST, 8),
        (CHILD_PSYCHOTHERAPIST, 2), (CARE_PROFESSIONAL, 5), (NURSE, 3), (GERIATRIC_NURSE, 2),
        (PHYSIOTHERAPIST, 3), (MIDWIFE, 1.5), (OCCUPATIONAL_THERAPIST, 1),
        (SPEECH_THERAPIST, 0.7), (PODIATRIST, 0.5),
    ]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Person:
    given: tuple[str, ...]
    family: str
    gender: str
    prefix: str  # "" for none

    @property
    def text(self) -> str:
        """``Dr. med. Anna Maria Schäfer``."""
        given = " ".join(self.given)
        return f"{self.prefix} {given} {self.family}" if self.prefix else f"{given} {self.family}"


def _person(draw: _Draw, titles: _Weighted[str]) -> _Person:
    female = draw.chance(0.52)
    names = FEMALE_GIVEN_NAMES if female else MALE_GIVEN_NAMES
    given = (draw.pick(names), draw.pick(names)) if draw.chance(0.15) else (draw.pick(names),)
    if len(given) == 2 and given[0] == given[1]:
        given = given[:1]
    gender = "female" if female else "male"
    return _Person(given, draw.pick(FAMILY_NAMES), gender, draw.weighted(titles))


# An organisation's name and the stem of its homeserver domain ("praxis-schaefer").
Namer = Callable[[_Draw, City, _Service], tuple[str, str]]


def _physician_practice(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    person = _person(draw, PHYSICIAN.titles)
    family = _SLUGS[person.family]
    roll = draw.random()
    if roll < 0.40:
        return f"Praxis {person.text}", f"praxis-{family}"
    if roll < 0.75:
        return f"{service.practice} {person.text}", f"praxis-{family}"
    if roll < 0.92:
        partner = draw.pick(FAMILY_NAMES)
        name = f"Gemeinschaftspraxis {person.family} & {partner}"
        return name, f"praxis-{family}-{_SLUGS[partner]}"
    landmark = draw.pick(_LANDMARKS)
    return f"MVZ am {landmark} {city.name}", f"mvz-{city.slug}"


def _dental_practice(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    person = _person(draw, DENTIST.titles)
    family = _SLUGS[person.family]
    roll = draw.random()
    if roll < 0.45:
        return f"{service.practice} {person.family}", f"zahnarzt-{family}"
    if roll < 0.85:
        return f"{service.practice} {person.text}", f"zahnarzt-{family}"
    landmark = draw.pick(_LANDMARKS)
    return f"Zahnärzte am {landmark}", f"zahnaerzte-{_SLUGS[landmark]}-{city.slug}"


def _pharmacy(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    roll = draw.random()
    if roll < 0.6:
        emblem = draw.pick(_PHARMACY_EMBLEMS)
        stem = f"{_SLUGS[emblem]}-apotheke"
        if roll < 0.35:
            return f"{emblem}-Apotheke", stem
        return f"{emblem}-Apotheke {city.name}", f"{stem}-{city.slug}"
    landmark = draw.pick(_LANDMARKS)
    stem = f"apotheke-am-{_SLUGS[landmark]}"
    if roll < 0.8:
        return f"Apotheke am {landmark}", stem
    return f"Apotheke am {landmark} {city.name}", f"{stem}-{city.slug}"


def _hospital(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    if draw.chance(0.3):
        quarter = draw.pick(_QUARTERS)
        return f"Klinikum {city.name} {quarter}", f"klinikum-{city.slug}-{_SLUGS[quarter]}"
    base = draw.pick(_HOSPITAL_NAMES)
    return f"{base} {city.name}", f"{_SLUGS[base]}-{city.slug}"


def _personal_practice(profession: _Profession, label: str) -> Namer:
    """Names like ``Praxis für Psychotherapie Dr. phil. Jana Weiß`` / ``Ergotherapie Weiß``."""

    def name(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
        person = _person(draw, profession.titles)
        stem = f"{label}-{_SLUGS[person.family]}"
        if draw.chance(0.5):
            return f"{service.practice} {person.text}", stem
        return f"{profession.workplace} {person.family}", stem

    return name


def _care_service(draw: _Draw, city: City, service: _Service) -> tuple[str, str]:
    roll = draw.random()
    if roll < 0.4:
        family = draw.pick(FAMILY_NAMES)
        return f"Pflegedienst {family}", f"pflegedienst-{_SLUGS[family]}"
    if roll < 0.7:
        return f"Ambulanter Pflegedienst {city.name}", f"pflegedienst-{city.slug}"
    if roll < 0.85:
        return f"Diakoniestation {city.name}", f"diakonie-{city.slug}"
    landmark = draw.pick(_LANDMARKS)
    return f"Seniorenzentrum am {landmark}", f"seniorenzentrum-{_SLUGS[landmark]}-{city.slug}"


# Opening hours: (day, start, end) rows, one availableTime each (daysOfWeek max 1 in the profile).
_Hours = tuple[tuple[str, str, str], ...]
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _hours(start: str, end: str, *extra: tuple[str, str, str]) -> _Hours:
    return (*((day, start, end) for day in _WEEKDAYS), *extra)


_PRACTICE_HOURS: tuple[_Hours, ...] = (
    _hours("08:00:00", "18:00:00"),
    _hours("07:30:00", "17:00:00"),
    _hours("08:00:00", "12:00:00"),
    _hours("09:00:00", "19:00:00"),
)
_PHARMACY_HOURS: tuple[_Hours, ...] = (
    _hours("08:00:00", "18:30:00", ("sat", "09:00:00", "13:00:00")),
    _hours("08:30:00", "19:00:00", ("sat", "09:00:00", "14:00:00")),
    _hours("08:00:00", "20:00:00", ("sat", "08:00:00", "20:00:00")),
)
_CLOSED_ON_HOLIDAYS = "An Feiertagen geschlossen"


@dataclass(frozen=True, slots=True)
class _OrganizationKind:
    """An OrganizationProfessionOID with how such organisations are named and staffed."""

    type: Coding
    telematik_id: str  # format with {region}, {serial} and {check}
    name: Namer
    services: _Weighted[_Service]
    staff: _Weighted[_Profession]
    endpoints: tuple[tuple[str, str], ...]  # (Endpoint.name prefix, MXID localpart)
    hours: tuple[_Hours, ...] = ()
    hospital: bool = False  # HealthcareService named after the department


def _org_type(code: str, display: str) -> Coding:
    return Coding(ORGANIZATION_PROFESSION, code, display)


def _staff(*pairs: tuple[_Profession, float]) -> _Weighted[_Profession]:
    return _Weighted.of(pairs)


_PRACTICE_DESKS = (("Empfang", "empfang"), ("Praxisteam", "praxisteam"), ("Anmeldung", "anmeldung"))
_THERAPY_DESKS = (("Praxis", "praxis"), ("Terminvergabe", "termine"))
_CARE_DESKS = (("Pflegedienstleitung", "pdl"), ("Büro", "buero"), ("Einsatzplanung", "planung"))

# TelematikID patterns of SMC-Bs: KV 1-20<region>…, KZV 2-2…, pharmacies 3-<kammer>.2…,
# DKTIG 5-2-<IK>, eGBR 10-67.<organisation OID>.
PHYSICIAN_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.50", "Betriebsstätte Arzt"),
    telematik_id="1-20{region}{serial}",
    name=_physician_practice,
    services=_PRACTICE_SERVICES,
    staff=_staff((PHYSICIAN, 1)),
    endpoints=_PRACTICE_DESKS,
    hours=_PRACTICE_HOURS,
)
DENTAL_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.51", "Zahnarztpraxis"),
    telematik_id="2-2.{region}.{serial}",
    name=_dental_practice,
    services=_DENTAL_SERVICES,
    staff=_staff((DENTIST, 1)),
    endpoints=_PRACTICE_DESKS,
    hours=_PRACTICE_HOURS,
)
PHARMACY = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.54", "Öffentliche Apotheke"),
    telematik_id="3-{region}.2.{serial}.{check}",
    name=_pharmacy,
    services=_PHARMACY_SERVICES,
    staff=_staff((PHARMACIST, 1)),
    endpoints=(("Apothekenteam", "team"), ("Bestellung", "bestellung"), ("Beratung", "beratung")),
    hours=_PHARMACY_HOURS,
)
HOSPITAL = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.53", "Krankenhaus"),
    telematik_id="5-2-26{serial}",
    name=_hospital,
    services=_HOSPITAL_SERVICES,
    staff=_staff((PHYSICIAN, 6), (NURSE, 2), (CARE_PROFESSIONAL, 2), (PHARMACIST, 0.3)),
    endpoints=(
        ("Patientenaufnahme", "aufnahme"),
        ("Sekretariat", "sekretariat"),
        ("Stationsleitung", "station"),
    ),
    hospital=True,
)
PSYCHOTHERAPY_PRACTICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.52", "Betriebsstätte Psychotherapeut"),
    telematik_id="1-20{region}{serial}",
    name=_personal_practice(PSYCHOTHERAPIST, "psychotherapie"),
    services=_PSYCHOTHERAPY_SERVICES,
    staff=_staff((PSYCHOTHERAPIST, 4), (CHILD_PSYCHOTHERAPIST, 1)),
    endpoints=_THERAPY_DESKS,
    hours=_PRACTICE_HOURS,
)
CARE_SERVICE = _OrganizationKind(
    type=_org_type("1.2.276.0.76.4.245", "Betriebsstätte Gesundheits-, Kranken- und Altenpflege"),
    telematik_id="10-67.245.{serial}",
    name=_care_service,
    services=_CARE_SERVICES,
    staff=_staff((CARE_PROFESSIONAL, 3), (NURSE, 2), (GERIATRIC_NURSE, 2)),
    endpoints=_CARE_DESKS,
)


def _therapy_practice(
    oid: str, display: str, profession: _Profession, label: str, services: _Weighted[_Service]
) -> _OrganizationKind:
    """A practice of one eGBR health profession, named after its holder (``10-67.<oid>``)."""
    return _OrganizationKind(
        type=_org_type(f"1.2.276.0.76.4.{oid}", display),
        telematik_id=f"10-67.{oid}.{{serial}}",
        name=_personal_practice(profession, label),
        services=services,
        staff=_staff((profession, 1)),
        endpoints=_THERAPY_DESKS,
        hours=_PRACTICE_HOURS,
    )


OCCUPATIONAL_THERAPY_PRACTICE = _therapy_practice(
    "278", "Ergotherapiepraxis", OCCUPATIONAL_THERAPIST, "ergotherapie", _ERGO_SERVICES
)
SPEECH_THERAPY_PRACTICE = _therapy_practice(
    "279", "Logopaedische Praxis", SPEECH_THERAPIST, "logopaedie", _SPEECH_SERVICES
)
PODIATRY_PRACTICE = _therapy_practice(
    "280", "Podologiepraxis", PODIATRIST, "podologie", _PODIATRY_SERVICES
)
_ORGANIZATION_KINDS = _Weighted.of(
    [
        (PHYSICIAN_PRACTICE, 44), (DENTAL_PRACTICE, 20), (PHARMACY, 18), (HOSPITAL, 3),
        (PSYCHOTHERAPY_PRACTICE, 7), (CARE_SERVICE, 4), (OCCUPATIONAL_THERAPY_PRACTICE, 2),
        (SPEECH_THERAPY_PRACTICE, 1.5), (PODIATRY_PRACTICE, 1.5),
    ]
)  # fmt: skip


# --- the generator ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How many units :func:`generate` makes; :meth:`total` is the number of resources."""

    organizations: int
    practitioners: int

    def __post_init__(self) -> None:
        if self.organizations < 0 or self.practitioners < 0:
            raise ValueError(f"counts must not be negative: {self}")

    def total(self) -> int:
        """Exactly the number of resources :func:`generate` yields for this shape."""
        return RESOURCES_PER_UNIT * (self.organizations + self.practitioners)


def generate(organizations: int, practitioners: int, *, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Stream ``Shape(organizations, practitioners).total()`` resources (module docstring).

    Raises:
        ValueError: a count is negative (at once, not on the first ``next``).
    """
    shape = Shape(organizations, practitioners)
    return _Generator(shape, seed).run()


@dataclass(frozen=True, slots=True)
class _Place:
    """A street address with coordinates and a phone number."""

    city: City
    line: str
    postal_code: str
    text: str
    latitude: float
    longitude: float
    phone: str


def _place(draw: _Draw, city: City) -> _Place:
    line = f"{draw.pick(STREETS)} {draw.number(1, 120)}"
    if draw.chance(0.08):
        line += draw.pick("abc")
    postal_code = f"{draw.number(city.first_postal_code, city.last_postal_code):05d}"
    radius = city.radius
    latitude = round(city.latitude + (draw.random() - 0.5) * radius, 5)
    longitude = round(city.longitude + (draw.random() - 0.5) * radius * 1.6, 5)
    digits = max(5, 11 - len(city.dialling_code))
    phone = f"{city.dialling_code} {draw.number(2 * 10 ** (digits - 1), 10**digits - 1)}"
    text = f"{line}, {postal_code} {city.name}, {city.state}, DE"
    return _Place(city, line, postal_code, text, latitude, longitude, phone)


@dataclass(frozen=True, slots=True)
class _Organization:
    """What practitioners employed by an organisation need of it."""

    number: str
    name: str
    domain: str
    kind: _OrganizationKind
    service: _Service
    place: _Place


@dataclass(frozen=True, slots=True)
class _Serials:
    """Distinct serial numbers: an affine permutation of 0 … modulus-1 (seeded)."""

    multiplier: int
    offset: int
    modulus: int
    digits: int

    @classmethod
    def for_count(cls, count: int, draw: _Draw) -> _Serials:
        digits = max(_SERIAL_DIGITS, len(str(count)))
        modulus = 10**digits
        multiplier = int(draw.random() * modulus) | 1
        if multiplier % 5 == 0:  # coprime with 10**digits, so the map is a bijection
            multiplier += 2
        return cls(multiplier, int(draw.random() * modulus), modulus, digits)

    def __call__(self, index: int) -> str:
        return f"{(self.multiplier * index + self.offset) % self.modulus:0{self.digits}d}"


def _meta(profile: str, origin: str = "ldap") -> dict[str, Any]:
    return {"tag": [{"system": ORIGIN, "code": origin}], "profile": [profile]}


def _reference(target: str) -> dict[str, str]:
    return {"reference": target}


def _address(place: _Place) -> dict[str, Any]:
    city = place.city
    return {
        "use": "work",
        "type": "postal",
        "text": place.text,
        "line": [place.line],
        "city": city.name,
        "state": city.state,
        "postalCode": place.postal_code,
        "country": "DE",
    }


def _location(
    location_id: str, name: str, place: _Place, organization: str | None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": location_id,
        "meta": _meta(LOCATION_PROFILE),
        "name": name,
        "address": _address(place),
        "position": {"longitude": place.longitude, "latitude": place.latitude},
    }
    if organization is not None:
        resource["managingOrganization"] = _reference(organization)
    return resource


def _endpoint(endpoint_id: str, name: str, mxid: str, organization: str | None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Endpoint",
        "id": endpoint_id,
        "meta": _meta(ENDPOINT_PROFILE, "owner"),
        "status": "active",
        "connectionType": {
            "system": CONNECTION_TYPE,
            "code": "tim",
            "display": "TI-Messenger Endpoint",
        },
        "name": name,
        "payloadType": [
            {
                "coding": [
                    {"system": PAYLOAD_TYPE, "code": "tim-chat", "display": "TI-Messenger chat"}
                ]
            }
        ],
        "address": f"matrix:u/{mxid}",
    }
    if organization is not None:
        resource["managingOrganization"] = _reference(organization)
    return resource


def _available_time(hours: _Hours) -> list[dict[str, Any]]:
    return [
        {"daysOfWeek": [day], "availableStartTime": start, "availableEndTime": end}
        for day, start, end in hours
    ]


class _Generator:
    """One run of :func:`generate`."""

    def __init__(self, shape: Shape, seed: int) -> None:
        self.shape = shape
        self.draw = _Draw(seed)
        self.organization_serials = _Serials.for_count(shape.organizations, self.draw)
        self.practitioner_serials = _Serials.for_count(shape.practitioners, self.draw)
        self.recent: list[_Organization] = []

    def run(self) -> Iterator[dict[str, Any]]:
        """Interleave the units in proportion, an organisation first."""
        organizations, practitioners = self.shape.organizations, self.shape.practitioners
        made_organizations = made_practitioners = 0
        while made_organizations < organizations or made_practitioners < practitioners:
            if made_practitioners >= practitioners or (
                made_organizations < organizations
                and made_organizations * practitioners <= made_practitioners * organizations
            ):
                made_organizations += 1
                yield from self.organization_unit(made_organizations)
            else:
                made_practitioners += 1
                yield from self.practitioner_unit(made_practitioners)

    # --- organisations ---

    def organization_unit(self, n: int) -> tuple[Resource, Resource, Resource, Resource]:
        """Organization, Location, Endpoint, HealthcareService of organisation ``n``."""
        draw = self.draw
        kind = draw.weighted(_ORGANIZATION_KINDS)
        city = draw.weighted(_CITY_TABLE)
        service = draw.weighted(kind.services)
        name, stem = kind.name(draw, city, service)
        number = f"{n:06d}"
        domain = f"{stem[:40].rstrip('-')}-{n}.{MATRIX_DOMAIN}"
        organization = _Organization(number, name, domain, kind, service, _place(draw, city))
        self._remember(n, organization)
        telematik_id = kind.telematik_id.format(
            region=city.region,
            serial=self.organization_serials(n - 1),
            check=f"{draw.number(10, 99)}.{draw.number(100, 999)}",
        )
        active = not draw.chance(INACTIVE_SHARE)
        return (
            self._organization(organization, telematik_id, active),
            _location(f"loc-{number}", name, organization.place, f"Organization/org-{number}"),
            self._organization_endpoint(organization),
            self._healthcare_service(organization, telematik_id, active),
        )

    def _remember(self, n: int, organization: _Organization) -> None:
        """Keep the last organisations, the candidate employers, in a ring buffer."""
        recent = self.recent
        if len(recent) < _RECENT_ORGANIZATIONS:
            recent.append(organization)
        else:
            recent[n % _RECENT_ORGANIZATIONS] = organization

    @staticmethod
    def _organization(
        organization: _Organization, telematik_id: str, active: bool
    ) -> dict[str, Any]:
        return {
            "resourceType": "Organization",
            "id": f"org-{organization.number}",
            "meta": _meta(ORGANIZATION_PROFILE),
            "identifier": [{"system": TELEMATIK_ID, "value": telematik_id}],
            "active": active,
            "type": [{"coding": [organization.kind.type.json()]}],
            "name": organization.name,
            "address": [_address(organization.place)],
        }

    def _organization_endpoint(self, organization: _Organization) -> dict[str, Any]:
        desk, localpart = self.draw.pick(organization.kind.endpoints)
        number = organization.number
        return _endpoint(
            f"ep-org-{number}",
            f"{desk} {organization.name}",
            f"{localpart}:{organization.domain}",
            f"Organization/org-{number}",
        )

    def _healthcare_service(
        self, organization: _Organization, telematik_id: str, active: bool
    ) -> dict[str, Any]:
        number = organization.number
        kind, service = organization.kind, organization.service
        resource: dict[str, Any] = {
            "resourceType": "HealthcareService",
            "id": f"hs-{number}",
            "meta": _meta(HEALTHCARE_SERVICE_PROFILE),
            "identifier": [{"system": TELEMATIK_ID, "value": telematik_id}],
            "active": active,
            "providedBy": _reference(f"Organization/org-{number}"),
            "type": [{"coding": [service.type.json()]}],
            "location": [_reference(f"Location/loc-{number}")],
            "name": service.practice if kind.hospital else organization.name,
            "telecom": [{"system": "phone", "value": organization.place.phone, "use": "work"}],
            "endpoint": [_reference(f"Endpoint/ep-org-{number}")],
        }
        specialties = self._specialties(service)
        if specialties:
            resource["specialty"] = specialties
        if kind.hours:
            resource["availableTime"] = _available_time(self.draw.pick(kind.hours))
            resource["availabilityExceptions"] = _CLOSED_ON_HOLIDAYS
        return resource

    def _specialties(self, service: _Service) -> list[dict[str, Any]]:
        chance = self.draw.chance
        return [
            {"coding": [coding.json()]}
            for coding, probability in service.specialties
            if chance(probability)
        ]

    # --- practitioners ---

    def practitioner_unit(self, n: int) -> tuple[Resource, Resource, Resource, Resource]:
        """Practitioner, Location, Endpoint, PractitionerRole of practitioner ``n``."""
        draw = self.draw
        employer = self._employer()
        if employer is None:
            profession = draw.weighted(_PROFESSIONS)
            place = _place(draw, draw.weighted(_CITY_TABLE))
            services = profession.services
            service = draw.weighted(services) if services is not None else None
        else:
            profession = draw.weighted(employer.kind.staff)
            place = employer.place
            service = employer.service
        person = _person(draw, profession.titles)
        number = f"{n:06d}"
        organization = None if employer is None else f"Organization/org-{employer.number}"
        practitioner = self._practitioner(n, person, profession, service, place)
        workplace = f"{profession.workplace} {person.text}" if employer is None else employer.name
        return (
            practitioner,
            _location(f"loc-pract-{number}", workplace, place, organization),
            self._practitioner_endpoint(n, person, profession, employer),
            self._role(number, practitioner["active"], employer),
        )

    def _employer(self) -> _Organization | None:
        recent = self.recent
        if not recent or not self.draw.chance(EMPLOYED_SHARE):
            return None
        return self.draw.pick(recent)

    def _practitioner(
        self,
        n: int,
        person: _Person,
        profession: _Profession,
        service: _Service | None,
        place: _Place,
    ) -> dict[str, Any]:
        draw = self.draw
        telematik_id = profession.telematik_id.format(
            region=place.city.region, serial=self.practitioner_serials(n - 1)
        )
        name: dict[str, Any] = {
            "use": "official",
            "text": person.text,
            "family": person.family,
            "given": list(person.given),
        }
        if person.prefix:
            name["prefix"] = [person.prefix]
        qualification = [{"code": {"coding": [profession.qualification.json()]}}]
        specialist = service.qualification if service is not None else None
        if profession is PHYSICIAN and specialist is not None and draw.chance(0.9):
            qualification.append({"code": {"coding": [specialist.json()]}})
        birth = f"{draw.number(1950, 1997)}-{draw.number(1, 12):02d}-{draw.number(1, 28):02d}"
        return {
            "resourceType": "Practitioner",
            "id": f"pract-{n:06d}",
            "meta": _meta(PRACTITIONER_PROFILE),
            "identifier": [{"system": TELEMATIK_ID, "value": telematik_id}],
            "active": not draw.chance(INACTIVE_SHARE),
            "name": [name],
            "gender": person.gender,
            "birthDate": birth,
            "qualification": qualification,
        }

    @staticmethod
    def _practitioner_endpoint(
        n: int, person: _Person, profession: _Profession, employer: _Organization | None
    ) -> dict[str, Any]:
        localpart = f"{_SLUGS[person.given[0]]}.{_SLUGS[person.family]}.{n}"
        if employer is None:
            domain, organization = f"{profession.domain}.{MATRIX_DOMAIN}", None
        else:
            domain, organization = employer.domain, f"Organization/org-{employer.number}"
        return _endpoint(f"ep-pract-{n:06d}", person.text, f"{localpart}:{domain}", organization)

    @staticmethod
    def _role(number: str, active: bool, employer: _Organization | None) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "PractitionerRole",
            "id": f"role-{number}",
            "meta": _meta(PRACTITIONER_ROLE_PROFILE),
            "active": active,
            "practitioner": _reference(f"Practitioner/pract-{number}"),
            "location": [_reference(f"Location/loc-pract-{number}")],
            "endpoint": [_reference(f"Endpoint/ep-pract-{number}")],
        }
        if employer is not None:
            resource["organization"] = _reference(f"Organization/org-{employer.number}")
            resource["healthcareService"] = [_reference(f"HealthcareService/hs-{employer.number}")]
        return resource
