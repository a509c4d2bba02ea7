"""Pure rules of the FHIR-Proxy: visibility on ``/search``, ownership and LDAP immutability.

No I/O here: :mod:`timkit.fhirproxy.api.fhir_routes` fetches what these functions look at.

Visibility (``/search``, see :func:`hidden`):

* an ``Endpoint`` whose ``status`` is not ``active`` is never shown. The HOWTO Search makes
  clients filter ``endpoint.status=active``, and the HOWTO Data calls ``status`` "set by the
  owner to control the visibility of the endpoint". So the owner's choice holds even for a
  client that forgets the filter;
* an ``Endpoint`` with ``EndpointVisibility`` ``hide-versicherte``, and an ``Organization``
  with ``OrganizationVisibility`` ``hide-versicherte``, are hidden from insured persons
  (callers whose homeserver domain is registered with ``isInsurance=true``);
* so are a ``HealthcareService`` and a ``PractitionerRole`` whose organisation link
  (:data:`ORGANIZATION_LINKS`) references such an Organization: a service of a hidden
  organisation would otherwise show what the organisation hides. The caller passes the
  references of the hidden Organizations, since only they know them.

Ownership (``/owner``, ML-123874): a resource belongs to a TelematikID when one of its
``identifier`` entries of system telematik-id, or its ``OwnerTelematikIdEx`` extension,
carries it. It also belongs when its owner link (:data:`OWNER_LINKS`) references a resource that
belongs to it. :func:`direct_owner` decides the first case, and :func:`owner_links` names the
references to follow for the second.

MXIDs (ML-123626, ML-123611): :func:`mxid_server` reads the server name of an MXID, in URI
form (``matrix:u/<localpart>:<server>``, percent-decoded once, query dropped) or as a user
id (``@<localpart>:<server>``), lower-cased and without port; a value that claims to be
one but is not well-formed is refused rather than guessed at. :func:`published_mxids` names
every MXID a resource publishes: a TI-M Endpoint's ``address`` (which must be an MXID),
any other ``address`` or ``telecom`` value that looks like one. Which servers a publisher may
name is the caller's decision (it needs the federation list).

LDAP immutability (ML-123874): :data:`LDAP_SYNCED` lists, per type, the elements the LDAP
sync writes (seed 003 §5.1.2). :func:`forbidden_changes` names those an update changes on an
``ldap``-origin resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from timkit.core.fhir import ORIGIN, TELEMATIK_ID

OWNER_EXTENSION = "https://gematik.de/fhir/directory/StructureDefinition/OwnerTelematikIdEx"
ENDPOINT_VISIBILITY = "https://gematik.de/fhir/directory/StructureDefinition/EndpointVisibility"
ORGANIZATION_VISIBILITY = (
    "https://gematik.de/fhir/directory/StructureDefinition/OrganizationVisibility"
)
HIDE_INSURED = "hide-versicherte"
MXID_PREFIX = "matrix:u/"
TIM_CONNECTION = "tim"

OWNER_LINKS: Mapping[str, tuple[str, ...]] = {
    "Organization": ("partOf",),
    "Practitioner": (),
    "HealthcareService": ("providedBy",),
    "PractitionerRole": ("practitioner", "organization"),
    "Location": ("managingOrganization",),
    "Endpoint": ("managingOrganization",),
}
"""Per type, the elements linking a resource to its owner's entry (ML-123482). A resource
created by an owner needs at least one of them to reference a resource of that owner."""

LINK_ELEMENTS: Mapping[str, tuple[str, ...]] = {
    "Organization": ("partOf", "endpoint"),
    "Practitioner": (),
    "HealthcareService": ("providedBy", "location", "endpoint"),
    "PractitionerRole": ("practitioner", "organization", "location", "endpoint"),
    "Location": ("managingOrganization", "partOf", "endpoint"),
    "Endpoint": ("managingOrganization",),
}
"""Per type, the reference elements an owner may only point at resources they own."""

ORGANIZATION_LINKS: Mapping[str, str] = {
    "HealthcareService": "providedBy",
    "PractitionerRole": "organization",
}
"""Per type, the element naming the Organization whose visibility the resource shares."""

OWNER_EXTENSION_TYPES = frozenset({"HealthcareService", "PractitionerRole", "Location", "Endpoint"})
"""Types whose profile has the ``OwnerTelematikIdEx`` extension. The proxy sets it on those an
owner creates; an owner-created Organization carries the owner's TelematikID as its
telematik-id ``identifier`` (which its profile requires)."""

BASE_TYPES = frozenset({"Organization", "Practitioner"})
"""Base entries: synced from LDAP; owners may change what LDAP does not write."""

LDAP_SYNCED: Mapping[str, tuple[str, ...]] = {
    "Organization": ("name", "alias", "address", "telecom:other", "identifier", "type"),
    "Practitioner": ("name", "address", "telecom:other", "identifier", "qualification"),
    "HealthcareService": ("specialty", "providedBy", "identifier"),
}
"""Elements the LDAP sync writes, per type (seed 003 §5.1.2: displayName → ``name``, address,
organization → ``alias``, userCertificate → ``telecom`` of system ``other``, telematikID →
``identifier``, professionOID → ``type``, HBA specialization → ``qualification``, SMC-B
specialization → ``HealthcareService.specialty``). ``telecom:other`` means only the telecom
entries of system ``other``."""

LDAP_MUTABLE_DERIVED: tuple[str, ...] = ("endpoint",)
"""What an owner may change on an ``ldap``-origin entry that is not a base entry
(HealthcareService, PractitionerRole, Location, Endpoint): only its endpoint links
(HOWTO Owner). An ``ldap``-origin Endpoint has no ``endpoint`` element, so it is immutable."""

_IGNORED_ON_COMPARE = frozenset({"id", "meta", "text"})


def origin(resource: Mapping[str, Any]) -> str | None:
    """The ``meta.tag`` Origin code (``ldap``, ``owner``, ``apo``), or ``None``."""
    for tag in _list(_dict(resource.get("meta")).get("tag")):
        if isinstance(tag, dict) and tag.get("system") == ORIGIN:
            code = tag.get("code")
            return code if isinstance(code, str) else None
    return None


def with_origin(resource: dict[str, Any], code: str) -> dict[str, Any]:
    """``resource`` with exactly one Origin tag, ``code`` (the input is not mutated)."""
    meta = dict(_dict(resource.get("meta")))
    tags = [t for t in _list(meta.get("tag")) if not _is_origin(t)]
    meta["tag"] = [*tags, {"system": ORIGIN, "code": code}]
    return {**resource, "meta": meta}


def telematik_ids(resource: Mapping[str, Any]) -> set[str]:
    """Values of the resource's ``identifier`` entries of system telematik-id."""
    return {
        str(i["value"])
        for i in _list(resource.get("identifier"))
        if isinstance(i, dict) and i.get("system") == TELEMATIK_ID and "value" in i
    }


def owner_extension_ids(resource: Mapping[str, Any]) -> set[str]:
    """TelematikIDs in the resource's ``OwnerTelematikIdEx`` extensions."""
    found: set[str] = set()
    for ext in _list(resource.get("extension")):
        if isinstance(ext, dict) and ext.get("url") == OWNER_EXTENSION:
            value = _dict(ext.get("valueIdentifier")).get("value")
            if isinstance(value, str):
                found.add(value)
    return found


def with_owner_extension(resource: dict[str, Any], telematik_id: str) -> dict[str, Any]:
    """``resource`` with exactly one ``OwnerTelematikIdEx``, ``telematik_id`` (not mutated)."""
    others = [
        e
        for e in _list(resource.get("extension"))
        if not (isinstance(e, dict) and e.get("url") == OWNER_EXTENSION)
    ]
    mine = {
        "url": OWNER_EXTENSION,
        "valueIdentifier": {"system": TELEMATIK_ID, "value": telematik_id},
    }
    return {**resource, "extension": [*others, mine]}


def direct_owner(resource: Mapping[str, Any], telematik_id: str) -> bool:
    """Whether ``resource`` names ``telematik_id`` itself (identifier or owner extension)."""
    return telematik_id in telematik_ids(resource) or telematik_id in owner_extension_ids(resource)


def references(resource: Mapping[str, Any], element: str) -> list[str]:
    """Relative references (``Type/id``) in ``resource[element]`` (single or list)."""
    value = resource.get(element)
    items = value if isinstance(value, list) else [value]
    found = []
    for item in items:
        ref = _dict(item).get("reference")
        if isinstance(ref, str) and ref:
            found.append(_relative(ref))
    return found


def owner_links(resource: Mapping[str, Any]) -> list[str]:
    """References in the owner-link elements of ``resource``'s type (:data:`OWNER_LINKS`)."""
    links = OWNER_LINKS.get(str(resource.get("resourceType")), ())
    return [ref for element in links for ref in references(resource, element)]


def linked(resource: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(element, reference)`` for every link an owner must own (:data:`LINK_ELEMENTS`)."""
    for element in LINK_ELEMENTS.get(str(resource.get("resourceType")), ()):
        for ref in references(resource, element):
            yield element, ref


def forbidden_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """FHIRPath-ish names of elements an owner may not change from ``old`` to ``new``.

    Only ``ldap``-origin (and ``apo``-origin) resources are restricted. For a base entry
    (Organization, Practitioner) these are the :data:`LDAP_SYNCED` elements. For any other
    type, every element except :data:`LDAP_MUTABLE_DERIVED` is restricted. The Origin tag
    itself may never change.
    """
    resource_type = str(old.get("resourceType"))
    changed: list[str] = []
    if origin(old) != origin(new):
        changed.append(f"{resource_type}.meta.tag:Origin")
    if origin(old) in (None, "owner"):
        return changed
    if resource_type in BASE_TYPES:
        for element in LDAP_SYNCED.get(resource_type, ()):
            if _element(old, element) != _element(new, element):
                changed.append(f"{resource_type}.{element.replace(':other', '')}")
        return changed
    keys = (set(old) | set(new)) - _IGNORED_ON_COMPARE - set(LDAP_MUTABLE_DERIVED)
    changed += [f"{resource_type}.{k}" for k in sorted(keys) if old.get(k) != new.get(k)]
    return changed


def hidden(
    resource: Mapping[str, Any],
    *,
    insured: bool,
    hidden_organizations: AbstractSet[str] = frozenset(),
) -> bool:
    """Whether ``/search`` must not show ``resource`` (see the module docstring).

    ``hidden_organizations`` holds ``Organization/<id>`` of the Organizations hidden from
    insured persons; it matters only when ``insured``.
    """
    resource_type = resource.get("resourceType")
    if resource_type == "Endpoint":
        if resource.get("status") != "active":
            return True
        return insured and _has_code(resource, ENDPOINT_VISIBILITY, HIDE_INSURED)
    if not insured:
        return False
    if resource_type == "Organization":
        return _has_code(resource, ORGANIZATION_VISIBILITY, HIDE_INSURED)
    link = ORGANIZATION_LINKS.get(str(resource_type))
    if link is None or not hidden_organizations:
        return False
    return any(ref in hidden_organizations for ref in references(resource, link))


_LOCALPART = re.compile(r"[A-Za-z0-9._=\-/+]+")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SERVER = re.compile(rf"({_LABEL}(?:\.{_LABEL})*)(?::([0-9]{{1,5}}))?")


class InvalidMxid(ValueError):
    """A value that claims to be an MXID but is not a well-formed one."""


def mxid_server(value: str) -> str | None:
    """The server name (domain, lower case, no port) of the MXID ``value``.

    Returns:
        None when ``value`` does not claim to be an MXID (neither ``matrix:`` nor ``@``).

    Raises:
        InvalidMxid: ``value`` claims to be an MXID but is malformed (no ``:``, bad
            localpart or server name, a ``%`` left after decoding once, another ``matrix:``
            kind than ``u/``).
    """
    if value[:7].lower() == "matrix:":
        if value[7:9].lower() != "u/":
            raise InvalidMxid(f"{value[:80]!r} is not a matrix:u/ user URI")
        rest = value[9:].split("?", 1)[0].split("#", 1)[0]
        try:
            rest = unquote(rest, errors="strict")
        except UnicodeDecodeError:
            raise InvalidMxid(f"{value[:80]!r} does not decode to UTF-8") from None
    elif value.startswith("@"):
        rest = value[1:]
    else:
        return None
    localpart, colon, server = rest.partition(":")
    if not colon or not _LOCALPART.fullmatch(localpart) or "%" in rest:
        raise InvalidMxid(f"{value[:80]!r} is not an MXID (<localpart>:<server name>)")
    matched = _SERVER.fullmatch(server.lower())
    if matched is None:
        raise InvalidMxid(f"{value[:80]!r} does not name a valid server name")
    return matched.group(1)


def is_tim_endpoint(resource: Mapping[str, Any]) -> bool:
    """Whether ``resource`` is an Endpoint of connection type ``tim`` (a TI-M address)."""
    if resource.get("resourceType") != "Endpoint":
        return False
    connection = _dict(resource.get("connectionType"))
    return connection.get("code") == TIM_CONNECTION


def published_mxids(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(element, value)`` of every value of ``resource`` that publishes an MXID.

    A TI-M Endpoint's ``address`` always counts (even when it is no MXID: the caller must
    refuse it); any other string ``address`` or ``telecom[].value`` counts when
    :func:`mxid_server` sees an MXID claim in it.
    """
    resource_type = str(resource.get("resourceType"))
    found: list[tuple[str, str]] = []
    address = resource.get("address")
    if is_tim_endpoint(resource):
        found.append((f"{resource_type}.address", address if isinstance(address, str) else ""))
    elif isinstance(address, str) and _claims_mxid(address):
        found.append((f"{resource_type}.address", address))
    for telecom in _list(resource.get("telecom")):
        value = _dict(telecom).get("value")
        if isinstance(value, str) and _claims_mxid(value):
            found.append((f"{resource_type}.telecom", value))
    return found


def _claims_mxid(value: str) -> bool:
    return value[:7].lower() == "matrix:" or value.startswith("@")


def passport_targets(resource: Mapping[str, Any], now: datetime | None = None) -> Iterator[str]:
    """Paths of MXIDs in ``resource`` that may carry a PASSporT (ML-123483).

    Yields ``"address"`` for an Endpoint and ``"telecom/<i>"`` for telecom entries. In both
    cases the value must be an MXID in URL form (``matrix:u/…``) and any ``period.end`` must not
    be in the past.
    """
    moment = now or datetime.now(UTC)
    if resource.get("resourceType") == "Endpoint":
        address = resource.get("address")
        if _is_mxid(address) and _current(resource.get("period"), moment):
            yield "address"
    for index, telecom in enumerate(_list(resource.get("telecom"))):
        if (
            isinstance(telecom, dict)
            and _is_mxid(telecom.get("value"))
            and _current(telecom.get("period"), moment)
        ):
            yield f"telecom/{index}"


_PARTIAL_DATE = re.compile(r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$")


def _is_mxid(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MXID_PREFIX) and "?" not in value


def _current(period: Any, now: datetime) -> bool:
    end = _dict(period).get("end")
    if not isinstance(end, str) or not end:
        return True
    try:
        if "T" in end:
            moment = datetime.fromisoformat(end.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment >= now
        # A date (or year, year-month) ends at the end of that period: compare as text.
        if not _PARTIAL_DATE.match(end):
            return False
        return end >= now.date().isoformat()[: len(end)]
    except ValueError:
        return False


def _has_code(resource: Mapping[str, Any], url: str, code: str) -> bool:
    return any(
        isinstance(ext, dict)
        and ext.get("url") == url
        and _dict(ext.get("valueCoding")).get("code") == code
        for ext in _list(resource.get("extension"))
    )


def _element(resource: Mapping[str, Any], element: str) -> Any:
    if element == "telecom:other":
        return [
            t
            for t in _list(resource.get("telecom"))
            if isinstance(t, dict) and t.get("system") == "other"
        ]
    return resource.get(element)


def _relative(reference: str) -> str:
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return "/".join(parts[-2:])


def _is_origin(tag: Any) -> bool:
    return isinstance(tag, dict) and tag.get("system") == ORIGIN


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


REFERRERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "Endpoint": (
        ("HealthcareService", "endpoint"),
        ("PractitionerRole", "endpoint"),
        ("Organization", "endpoint"),
        ("Location", "endpoint"),
    ),
    "Organization": (
        ("Organization", "partof"),
        ("HealthcareService", "organization"),
        ("PractitionerRole", "organization"),
        ("Location", "organization"),
        ("Endpoint", "organization"),
    ),
    "Location": (
        ("HealthcareService", "location"),
        ("PractitionerRole", "location"),
        ("Location", "partof"),
    ),
}
"""Per target type, ``(source type, search parameter)`` pairs that find resources still
referencing a target; such a target cannot be deleted (409)."""
