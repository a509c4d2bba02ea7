"""Mapping of VZD-LDAP-Directory entries to the FHIR base entries (seed 003 §5.1.2).

Pure functions, no I/O. Contract:

* :class:`LdapEntry` is one LDAP entry with case-insensitive attribute names (``street``,
  ``l`` and ``st`` are read as ``streetAddress``, ``localityName`` and
  ``stateOrProvinceName``), built from an ldap3 search result or from the JSON form of
  ``samples/eGBR`` (a value may be a string or a list; ``userCertificate`` base64 DER or PEM).
* :func:`map_entry` gives the base resources of an entry: an SMC-B entry an ``Organization``
  plus its ``HealthcareService`` (the specialties), an HBA entry a ``Practitioner``. Their ids
  are derived from the TelematikID alone (:func:`resource_ids`), so every synchronisation
  writes the same resources. All carry ``meta.tag`` Origin ``ldap``.
* The mapping table of the seed, row by row (rows with ``-`` are not mapped):

  ======================  =========  ==========================================================
  LDAP attribute          entry      FHIR element
  ======================  =========  ==========================================================
  displayName             both       ``Organization.name`` / ``Practitioner.name[0].text``
                                     (and ``HealthcareService.name``)
  streetAddress,          both       ``address``: use work, type postal, ``text`` = the five
  postalCode,                        values joined by CRLF (street, postal code, locality,
  localityName,                      state, country), ``line``, ``city``, ``state``,
  stateOrProvinceName,               ``postalCode``, ``country``
  countryCode
  organization            SMC-B      ``Organization.alias``
  specialization          SMC-B      ``urn:psc:<oid>:<code>`` → ``HealthcareService.specialty``
                                     (system ``urn:oid:<oid>``, display where known)
  specialization          HBA        ``urn:as:<oid>:<code>`` →
                                     ``Practitioner.qualification.code``
  userCertificate         both       ``telecom`` system ``other``, value the PEM
  telematikID             both       ``identifier`` (system ``…/sid/telematik-id``)
  professionOID           SMC-B      ``Organization.type`` (OrganizationProfessionOID, display)
  ======================  =========  ==========================================================

  Beyond the seed table, from gematik's ``LDAP2FHIR_Sync.adoc`` where the seed is silent: an
  HBA's ``professionOID`` → ``Practitioner.qualification`` (PractitionerProfessionOID) and
  ``active`` (``FALSE`` → ``active: false``, otherwise true). ``givenName``, ``sn``, ``cn``,
  ``title``, ``otherName``, ``domainID``, ``holder``, ``mail``, ``changeDateTime`` … are not
  mapped, as the seed table says. Specialisations of the wrong form for the entry type are
  skipped without failing the entry (as ``LDAP2FHIR_Sync.adoc`` asks).
* The seed names the Organization.type system ``…/VZD-FHIR-Directory/CodeSystem/
  TIProfessionOidCS``; the current profiles (and the rest of this directory) call the same code
  system ``https://gematik.de/fhir/directory/CodeSystem/OrganizationProfessionOID``, which is
  used here so that searches by type find synchronised entries.
* :func:`merge` lays the LDAP-owned elements (:func:`ldap_owned`) of a mapped resource over the
  directory's current version and keeps everything else (what owners added), so a sync never
  erases owner data, and owner rules can check that an owner write leaves
  ``ldap_owned(resource)`` unchanged (ML-123874).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from timkit.core.fhir import (
    HEALTHCARE_SERVICE_PROFILE,
    ORGANIZATION_PROFILE,
    ORIGIN,
    PRACTITIONER_PROFILE,
    TELEMATIK_ID,
)
from timkit.core.professions import (
    INSTITUTIONS,
    ORGANIZATION_PROFESSION_SYSTEM,
    PERSONS,
    PRACTITIONER_PROFESSION_SYSTEM,
    is_institution,
    is_person,
)
from timkit.fhirproxy.ldap.codes import SPECIALTIES, TELEMATIK_ID_TYPES

Resource = dict[str, Any]
CRLF = "\r\n"
_ALIASES = {"street": "streetaddress", "l": "localityname", "st": "stateorprovincename"}
_BINARY = frozenset({"usercertificate"})
_SPECIALIZATION = re.compile(r"urn:(psc|as):([0-2](?:\.\d+)+):(.+)")
_PLAIN_ID = re.compile(r"[A-Za-z0-9.\-]+")
_MAX_ID = 64
_VOLATILE_META = ("versionId", "lastUpdated", "source")


class Kind(StrEnum):
    """The two kinds of VZD base entry."""

    SMCB = "smcb"  # an institution (SMC-B): Organization + HealthcareService
    HBA = "hba"  # a person (HBA): Practitioner


class MappingError(ValueError):
    """An entry that cannot be mapped at all (no TelematikID)."""


@dataclass(frozen=True)
class LdapEntry:
    """One LDAP entry: attribute name (lower case) → values (``bytes`` only for certificates).

    Attributes:
        telematik_id: the entry's TelematikID.
        attributes: every attribute, names lower-cased and aliases resolved.
        dn: the entry's DN (empty for entries from a seed file).
    """

    telematik_id: str
    attributes: Mapping[str, tuple[str | bytes, ...]]
    dn: str = ""

    @classmethod
    def of(cls, attributes: Mapping[str, Any], dn: str = "") -> LdapEntry:
        """An entry from attributes whose values are a value or a list of values.

        Values may be ``str``, ``bytes`` (UTF-8 except ``userCertificate``), ``bool`` (as
        ``TRUE``/``FALSE``) or numbers. Raises :class:`MappingError` without a TelematikID.
        """
        normal: dict[str, tuple[str | bytes, ...]] = {}
        for name, value in attributes.items():
            base = name.lower().split(";", 1)[0]  # userCertificate;binary
            key = _ALIASES.get(base, base)
            values = value if isinstance(value, list | tuple) else [value]
            converted = tuple(_value(key, v) for v in values if v is not None)
            normal[key] = normal.get(key, ()) + tuple(v for v in converted if v != "")
        telematik_ids = [v for v in normal.get("telematikid", ()) if isinstance(v, str)]
        if not telematik_ids:
            raise MappingError(f"LDAP entry {dn or '(seed)'} has no telematikID")
        return cls(telematik_ids[0].strip(), normal, dn)

    def first(self, name: str) -> str | None:
        """The first text value of ``name``, or None."""
        return next(iter(self.texts(name)), None)

    def texts(self, name: str) -> list[str]:
        """Every non-blank text value of ``name`` (stripped)."""
        values = self.attributes.get(name.lower(), ())
        return [v.strip() for v in values if isinstance(v, str) and v.strip()]

    def flag(self, name: str) -> bool | None:
        """A boolean attribute (``TRUE``/``FALSE``), or None when absent or malformed."""
        value = (self.first(name) or "").upper()
        return {"TRUE": True, "FALSE": False}.get(value)


def _value(name: str, value: Any) -> str | bytes:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, bytes):
        return value if name in _BINARY else value.decode("utf-8", errors="replace")
    return str(value)


def entries_from_json(text: str | bytes) -> list[LdapEntry]:
    """The entries of a seed file: a JSON list of ``samples/eGBR`` objects (or one object)."""
    data = json.loads(text)
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise MappingError("a seed file holds a JSON object or a list of objects")
    return [LdapEntry.of(item) for item in items]


# --- kinds and ids -------------------------------------------------------------------------


def kind_of(entry: LdapEntry) -> Kind:
    """HBA or SMC-B: by ``personalEntry``, else ``professionOID``, else the TelematikID pattern.

    The TelematikID patterns are gematik's ``TelematikID.mapping.json``; an entry matching
    none of the rules is an SMC-B (the mapping's catch-all is an Organization).
    """
    personal = entry.flag("personalEntry")
    if personal is not None:
        return Kind.HBA if personal else Kind.SMCB
    for oid in entry.texts("professionOID"):
        if is_person(oid):
            return Kind.HBA
        if is_institution(oid):
            return Kind.SMCB
    for pattern, resource_type in TELEMATIK_ID_TYPES:
        if re.match(pattern, entry.telematik_id):
            return Kind.HBA if resource_type == "Practitioner" else Kind.SMCB
    return Kind.SMCB


def _id(prefix: str, telematik_id: str) -> str:
    if _PLAIN_ID.fullmatch(telematik_id) and len(prefix) + len(telematik_id) <= _MAX_ID:
        return prefix + telematik_id
    return prefix + hashlib.sha256(telematik_id.encode()).hexdigest()[:40]


def resource_ids(telematik_id: str, kind: Kind) -> list[str]:
    """``Type/id`` of every base resource of the entry (a function of its TelematikID).

    ``ldap-org-<tid>``/``ldap-hs-<tid>`` or ``ldap-pract-<tid>``; a TelematikID with other
    characters than letters, digits, ``-`` and ``.``, or too long for a FHIR id, is replaced by
    40 hex digits of its SHA-256.
    """
    if kind is Kind.HBA:
        return [f"Practitioner/{_id('ldap-pract-', telematik_id)}"]
    return [
        f"Organization/{_id('ldap-org-', telematik_id)}",
        f"HealthcareService/{_id('ldap-hs-', telematik_id)}",
    ]


# --- the mapping ---------------------------------------------------------------------------


def map_entry(entry: LdapEntry) -> list[Resource]:
    """The base resources of ``entry`` (see the module docstring), in :func:`resource_ids` order."""
    kind = kind_of(entry)
    ids = [ref.split("/", 1)[1] for ref in resource_ids(entry.telematik_id, kind)]
    if kind is Kind.HBA:
        return [_practitioner(entry, ids[0])]
    return [_organization(entry, ids[0]), _healthcare_service(entry, ids[1], ids[0])]


def _meta(profile: str) -> dict[str, Any]:
    return {"tag": [{"system": ORIGIN, "code": "ldap"}], "profile": [profile]}


def _base(resource_type: str, resource_id: str, profile: str, entry: LdapEntry) -> Resource:
    return {
        "resourceType": resource_type,
        "id": resource_id,
        "meta": _meta(profile),
        "identifier": [{"system": TELEMATIK_ID, "value": entry.telematik_id}],
        "active": entry.flag("active") is not False,
    }


def _organization(entry: LdapEntry, resource_id: str) -> Resource:
    resource = _base("Organization", resource_id, ORGANIZATION_PROFILE, entry)
    types = [
        {"coding": [_coding(ORGANIZATION_PROFESSION_SYSTEM, oid, INSTITUTIONS)]}
        for oid in entry.texts("professionOID")
    ]
    _put(resource, "type", types)
    _put(resource, "name", entry.first("displayName"))
    _put(resource, "alias", entry.texts("organization"))
    _put(resource, "telecom", certificate_telecoms(entry))
    _put(resource, "address", address(entry))
    return resource


def _healthcare_service(entry: LdapEntry, resource_id: str, organization_id: str) -> Resource:
    resource = _base("HealthcareService", resource_id, HEALTHCARE_SERVICE_PROFILE, entry)
    resource["providedBy"] = {"reference": f"Organization/{organization_id}"}
    _put(resource, "name", entry.first("displayName"))
    specialties = [{"coding": [c]} for c in specializations(entry, "psc")]
    _put(resource, "specialty", specialties)
    return resource


def _practitioner(entry: LdapEntry, resource_id: str) -> Resource:
    resource = _base("Practitioner", resource_id, PRACTITIONER_PROFILE, entry)
    display_name = entry.first("displayName")
    _put(resource, "name", [{"text": display_name}] if display_name else [])
    _put(resource, "telecom", certificate_telecoms(entry))
    _put(resource, "address", address(entry))
    professions = [
        _coding(PRACTITIONER_PROFESSION_SYSTEM, oid, PERSONS)
        for oid in entry.texts("professionOID")
    ]
    codings = professions + specializations(entry, "as")
    _put(resource, "qualification", [{"code": {"coding": [c]}} for c in codings])
    return resource


def _put(resource: Resource, name: str, value: Any) -> None:
    if value:
        resource[name] = value


def _coding(system: str, code: str, displays: Mapping[str, str]) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if code in displays:
        coding["display"] = displays[code]
    return coding


def address(entry: LdapEntry) -> list[dict[str, Any]]:
    """The entry's postal work address (empty when it has no address attribute)."""
    street = entry.first("streetAddress")
    postal_code = entry.first("postalCode")
    city = entry.first("localityName")
    state = entry.first("stateOrProvinceName")
    country = entry.first("countryCode")
    parts = [street, postal_code, city, state, country]
    if not any(parts):
        return []
    result: dict[str, Any] = {
        "use": "work",
        "type": "postal",
        "text": CRLF.join(p for p in parts if p),
    }
    fields = {"line": [street] if street else None, "city": city, "state": state}
    fields |= {"postalCode": postal_code, "country": country}
    result.update((k, v) for k, v in fields.items() if v)
    return [result]


def specializations(entry: LdapEntry, scheme: str) -> list[dict[str, str]]:
    """Codings of the ``urn:<scheme>:<oid>:<code>`` specialisations; other forms are skipped."""
    codings = []
    for value in entry.texts("specialization"):
        match = _SPECIALIZATION.fullmatch(value)
        if match is None or match.group(1) != scheme:
            continue
        oid, code = match.group(2), match.group(3)
        codings.append(_coding(f"urn:oid:{oid}", code, SPECIALTIES.get(oid, {})))
    return codings


def certificate_telecoms(entry: LdapEntry) -> list[dict[str, str]]:
    """One ``telecom`` (system ``other``, PEM value) per well-formed ``userCertificate``."""
    telecoms = []
    for value in entry.attributes.get("usercertificate", ()):
        pem = to_pem(value)
        if pem is not None:
            telecoms.append({"system": "other", "value": pem})
    return telecoms


def to_pem(value: str | bytes) -> str | None:
    """A certificate value (DER bytes, base64 DER text or PEM) as PEM; None if malformed."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-----BEGIN"):
            body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
        else:
            body = text
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        der = value
    if not der:
        return None
    lines = textwrap.wrap(base64.b64encode(der).decode(), 64)
    return "\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----"]) + "\n"


# --- LDAP-owned elements, merge and deactivation ---------------------------------------------

_Owned = Callable[[Any], bool] | None  # None: the whole element; else the owned list items


def _system_is(system: str) -> Callable[[Any], bool]:
    return lambda item: isinstance(item, dict) and item.get("system") == system


def _type_is(system: str) -> Callable[[Any], bool]:
    def owned(item: Any) -> bool:
        codings = item.get("coding") if isinstance(item, dict) else None
        return isinstance(codings, list) and any(_system_is(system)(c) for c in codings)

    return owned


_TELEMATIK = _system_is(TELEMATIK_ID)
_CERTIFICATE = _system_is("other")
SYNCED: Mapping[str, Mapping[str, _Owned]] = {
    "Organization": {
        "identifier": _TELEMATIK,
        "active": None,
        "type": _type_is(ORGANIZATION_PROFESSION_SYSTEM),
        "name": None,
        "alias": None,
        "telecom": _CERTIFICATE,
        "address": None,
    },
    "HealthcareService": {
        "identifier": _TELEMATIK,
        "active": None,
        "providedBy": None,
        "name": None,
        "specialty": None,
    },
    "Practitioner": {
        "identifier": _TELEMATIK,
        "active": None,
        "name": None,
        "telecom": _CERTIFICATE,
        "address": None,
        "qualification": None,
    },
}
"""Per resource type, the elements the LDAP sync owns: whole, or the list items selected."""


def ldap_owned(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The LDAP-owned part of a base resource (empty for other types).

    Owner writes must leave this unchanged (ML-123874); :func:`merge` replaces exactly it.
    """
    owned: dict[str, Any] = {}
    for name, select in SYNCED.get(str(resource.get("resourceType")), {}).items():
        value = resource.get(name)
        if select is not None and isinstance(value, list):
            value = [item for item in value if select(item)]
        if value not in (None, [], ""):
            owned[name] = value
    return owned


def merge(current: Mapping[str, Any] | None, mapped: Resource) -> Resource:
    """``current`` with its LDAP-owned elements replaced by those of ``mapped``.

    Elements owners added (other identifiers and telecoms, endpoints, extensions, …) stay;
    ``meta`` keeps the current profile and tags but carries Origin ``ldap`` and loses the
    server-set ``versionId``/``lastUpdated``. Without ``current`` the result is ``mapped``.
    """
    if current is None:
        return json.loads(json.dumps(mapped))  # type: ignore[no-any-return]
    result: Resource = {k: v for k, v in current.items() if k != "meta"}
    for name, select in SYNCED[mapped["resourceType"]].items():
        new = mapped.get(name)
        if select is None:
            result.pop(name, None)
            if new is not None:
                result[name] = new
            continue
        kept = [item for item in result.get(name) or [] if not select(item)]
        combined = list(new or []) + kept
        result.pop(name, None)
        if combined:
            result[name] = combined
    result["meta"] = _merged_meta(current.get("meta"), mapped["meta"])
    result["id"] = mapped["id"]
    return _ordered(result, mapped)


def _merged_meta(current: Any, mapped: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (current or {}).items() if k not in _VOLATILE_META}
    tags = [t for t in meta.get("tag") or [] if not _system_is(ORIGIN)(t)]
    meta["tag"] = [*mapped["tag"], *tags]
    meta["profile"] = meta.get("profile") or list(mapped["profile"])
    return meta


def _ordered(resource: Resource, mapped: Resource) -> Resource:
    """Keys in a stable order: the mapped resource's first, then the rest as they were."""
    keys = [k for k in mapped if k in resource] + [k for k in resource if k not in mapped]
    return {k: resource[k] for k in keys}


def deactivated(current: Mapping[str, Any]) -> Resource:
    """``current`` with ``active: false`` (an entry gone from LDAP) and volatile meta removed."""
    result: Resource = dict(current)
    result["meta"] = {
        k: v for k, v in (current.get("meta") or {}).items() if k not in _VOLATILE_META
    }
    result["active"] = False
    return result


def same(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether writing ``wanted`` over ``current`` would change nothing (volatile meta aside)."""
    if current is None:
        return False
    return _comparable(current) == _comparable(wanted)


def _comparable(resource: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in _VOLATILE_META}
    return {**{k: v for k, v in resource.items() if k != "meta"}, "meta": meta}
