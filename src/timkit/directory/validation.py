"""Write-side validation of VZD-FHIR-Directory resources (ML-123880).

Contract: :func:`validate` takes a JSON resource (a ``dict``) that is about to be stored and
either returns it or raises :class:`~timkit.core.errors.TimkitError` with
``requirement="ML-123880"``. The checks run in this order and the first failing one raises:

1. **type** - ``resourceType`` must be one of the six directory types (:data:`DIRECTORY_TYPES`)
   or an alias of one (:data:`TYPE_ALIASES`), else 400 ``not-supported``. An alias is
   normalised in the returned dict (a shallow copy; the input is never mutated). When
   ``expected_type`` is given (e.g. the type in the URL) and differs, 400 ``invalid``.
2. **structure** - the resource must be valid FHIR R4 for its type (checked with the R4B models
   of ``fhir.resources``): wrong JSON types, unknown elements, bad primitive formats give 400
   ``structure`` with every offending element in ``expression`` (``Endpoint.status``,
   ``Organization.identifier[0].system``).
3. **profile** - the elements gematik's ``<Type>Directory`` profile requires: the base R4
   resource's mandatory elements, the profile's mandatory top-level elements and its mandatory
   slices that are told apart by ``system`` (``meta.tag:Origin``, ``identifier:TelematikID``).
   All missing ones are reported together as 422 ``required``. Slice cardinality and code
   violations (an Origin tag whose code is not in ``OriginVS``, two Origin tags) give 422
   ``value`` (or ``required`` when something is missing as well).

The profiles are read once at import from ``package/StructureDefinition-*Directory.json``
(their ``differential``). Per call, validation costs one ``model_validate`` plus a few dict
look-ups. Not checked: FHIRPath invariants, terminology bindings other than the slices' codes,
and extension slices.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from timkit.core.errors import IssueType, TimkitError
from timkit.core.fhir import DIRECTORY_TYPES
from timkit.directory.searchparams import PACKAGE

REQUIREMENT = "ML-123880"

_MODELS: Mapping[str, type[FHIRResourceModel]] = MappingProxyType(
    {
        "Organization": Organization,
        "Practitioner": Practitioner,
        "PractitionerRole": PractitionerRole,
        "HealthcareService": HealthcareService,
        "Location": Location,
        "Endpoint": Endpoint,
    }
)
if frozenset(_MODELS) != DIRECTORY_TYPES:  # pragma: no cover - a wiring mistake
    raise ImportError("validation models and directory resource types differ")
TYPE_ALIASES: Mapping[str, str] = MappingProxyType(
    {"TIOrganization": "Organization", "TIPractitioner": "Practitioner"}
)

# Slice discriminators the differentials do not spell out because they are inherited from the
# base profiles (de.gematik.ti ti-organization / ti-practitioner: identifier sliced by system,
# slice TelematikID typed http://fhir.de/StructureDefinition/identifier-telematik-id).
_INHERITED_SLICE_SYSTEMS: Mapping[str, str] = MappingProxyType(
    {"TelematikID": "https://gematik.de/fhir/sid/telematik-id"}
)
# Codes of the value sets bound (strength required) to the slices we check. OriginVS includes
# all of CodeSystem https://gematik.de/fhir/directory/CodeSystem/Origin, which in the api-vzd
# version of package/ (main 9c39b5f, de.gematik.fhir.directory 1.1.1) has ldap, owner and apo.
_VALUE_SET_CODES: Mapping[str, frozenset[str]] = MappingProxyType(
    {"https://gematik.de/fhir/directory/ValueSet/OriginVS": frozenset({"ldap", "owner", "apo"})}
)
_MISSING_ERROR_TYPES = frozenset({"missing", "model_field_validation.missing"})
_EMPTY: tuple[Any, ...] = (None, "", [], {})
_MAX_MESSAGE = 200


@dataclass(frozen=True, slots=True)
class _SystemSlice:
    """A profile slice of a Coding/Identifier list told apart by ``system``."""

    element_id: str  # e.g. "Endpoint.meta.tag:Origin"
    container: tuple[str, ...]  # path below the resource root, e.g. ("meta", "tag")
    system: str
    min: int
    max: int | None
    codes: frozenset[str] | None  # allowed codes; None means any


@dataclass(frozen=True, slots=True)
class _Profile:
    """What validation needs to know of one ``<Type>Directory`` profile."""

    name: str
    resource_type: str
    required: tuple[str, ...]  # top-level elements that must be present
    slices: tuple[_SystemSlice, ...]


class _Problem(NamedTuple):
    expression: str
    message: str
    missing: bool


# --- profiles, derived once at import ------------------------------------------------------


def _base_required(model: type[FHIRResourceModel]) -> list[str]:
    """Mandatory (min >= 1) elements of the base R4 resource, as ``fhir.resources`` marks them."""
    names = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        flagged = isinstance(extra, dict) and extra.get("element_required") is True
        if info.is_required() or flagged:
            names.append(info.alias or name)
    return names


def _profile_required(elements: list[dict[str, Any]]) -> list[str]:
    """Top-level elements the differential makes mandatory (``Endpoint.name`` → ``name``)."""
    names = []
    for element in elements:
        parts = element["id"].split(".")
        if len(parts) != 2 or ":" in element["id"] or element.get("min", 0) < 1:
            continue
        if parts[1].endswith("[x]"):
            raise ValueError(f"choice element {element['id']} is not supported as mandatory")
        names.append(parts[1])
    return names


def _slice_codes(element: dict[str, Any], by_id: Mapping[str, dict[str, Any]]) -> frozenset[str]:
    code = by_id.get(f"{element['id']}.code", {})
    pattern = code.get("patternCode") or code.get("fixedCode")
    if pattern:
        return frozenset({pattern})
    binding = element.get("binding", {})
    if binding.get("strength") == "required":
        return _VALUE_SET_CODES.get(binding.get("valueSet", ""), frozenset())
    return frozenset()


def _system_slice(
    element: dict[str, Any], by_id: Mapping[str, dict[str, Any]]
) -> _SystemSlice | None:
    """The slice ``element`` defines if it is discriminated by ``system``, else ``None``."""
    name = element.get("sliceName")
    if name is None or element["id"].count(":") != 1:
        return None
    system_element = by_id.get(f"{element['id']}.system", {})
    system = system_element.get("patternUri") or system_element.get("fixedUri")
    system = system or _INHERITED_SLICE_SYSTEMS.get(name)
    minimum = int(element.get("min", 0))
    if system is None:
        if minimum >= 1:
            raise ValueError(f"cannot check mandatory slice {element['id']}: unknown discriminator")
        return None
    maximum = element.get("max", "*")
    return _SystemSlice(
        element_id=element["id"],
        container=tuple(element["path"].split(".")[1:]),
        system=system,
        min=minimum,
        max=None if maximum == "*" else int(maximum),
        codes=_slice_codes(element, by_id) or None,
    )


def _load_profile(path: Path) -> _Profile:
    definition = json.loads(path.read_text("utf-8"))
    resource_type = definition["type"]
    elements = definition["differential"]["element"]
    by_id = {element["id"]: element for element in elements}
    required = _base_required(_MODELS[resource_type]) + _profile_required(elements)
    slices = (_system_slice(element, by_id) for element in elements)
    return _Profile(
        name=definition["name"],
        resource_type=resource_type,
        required=tuple(dict.fromkeys(required)),
        slices=tuple(s for s in slices if s is not None),
    )


def _load_profiles() -> Mapping[str, _Profile]:
    profiles = {}
    for path in sorted(PACKAGE.glob("StructureDefinition-*Directory.json")):
        profile = _load_profile(path)
        profiles[profile.resource_type] = profile
    if set(profiles) != DIRECTORY_TYPES:
        raise ValueError(f"{PACKAGE}: expected profiles for {sorted(DIRECTORY_TYPES)}")
    return MappingProxyType(profiles)


_PROFILES = _load_profiles()


# --- public API ------------------------------------------------------------------------------


def canonical_type(name: str) -> str:
    """The directory type ``name`` denotes (resolving aliases such as ``TIOrganization``).

    Raises:
        TimkitError: 400 ``not-supported`` if ``name`` is none of the six directory types.
    """
    if name in DIRECTORY_TYPES:
        return name
    alias = TYPE_ALIASES.get(name)
    if alias is not None:
        return alias
    supported = ", ".join(sorted(DIRECTORY_TYPES))
    raise TimkitError(
        400,
        IssueType.NOT_SUPPORTED,
        f"resource type {name!r} is not supported by the VZD-FHIR-Directory ({supported})",
        requirement=REQUIREMENT,
    )


def validate(resource: dict[str, Any], *, expected_type: str | None = None) -> dict[str, Any]:
    """Check ``resource`` on write; return it, with an aliased ``resourceType`` normalised.

    Raises:
        TimkitError: 400 for an unsupported or unexpected type or a structural error, 422 when
            the ``<Type>Directory`` profile is violated (see the module docstring).
    """
    resource_type = _resource_type(resource)
    if expected_type is not None and canonical_type(expected_type) != resource_type:
        raise TimkitError(
            400,
            IssueType.INVALID,
            f"resourceType {resource_type} does not match the expected type {expected_type}",
            requirement=REQUIREMENT,
        )
    if resource["resourceType"] != resource_type:
        resource = {**resource, "resourceType": resource_type}
    profile = _PROFILES[resource_type]
    _check_structure(resource, profile)
    _check_profile(resource, profile)
    return resource


# --- checks ------------------------------------------------------------------------------------


def _resource_type(resource: Any) -> str:
    if not isinstance(resource, dict):
        message = "a FHIR resource must be a JSON object"
        raise TimkitError(400, IssueType.STRUCTURE, message, requirement=REQUIREMENT)
    name = resource.get("resourceType")
    if not isinstance(name, str):
        raise TimkitError(
            400,
            IssueType.STRUCTURE,
            "resourceType is missing or not a string",
            requirement=REQUIREMENT,
        )
    return canonical_type(name)


def _check_structure(resource: dict[str, Any], profile: _Profile) -> None:
    """Validate against the R4 model. Missing mandatory elements are left to the profile check,
    which reports all of them (pydantic reports missing primitives only when all else is fine).
    """
    try:
        _MODELS[profile.resource_type].model_validate(resource)
    except ValidationError as exc:
        errors = [e for e in exc.errors(include_url=False) if not _is_missing(e, profile)]
        if errors:
            raise _structure_error(profile.resource_type, errors) from exc


def _is_missing(error: ErrorDetails, profile: _Profile) -> bool:
    loc = error["loc"]
    return error["type"] in _MISSING_ERROR_TYPES and len(loc) == 1 and loc[0] in profile.required


def _structure_error(resource_type: str, errors: list[ErrorDetails]) -> TimkitError:
    expressions = [_expression(resource_type, error["loc"]) for error in errors]
    messages = [
        f"{expression}: {_shorten(error['msg'])}"
        for expression, error in zip(expressions, errors, strict=True)
    ]
    return TimkitError(
        400,
        IssueType.STRUCTURE,
        "; ".join(messages),
        requirement=REQUIREMENT,
        extra={"expression": list(dict.fromkeys(expressions))},
    )


def _expression(resource_type: str, loc: tuple[int | str, ...]) -> str:
    """FHIRPath-like path of a pydantic error location: ``Organization.identifier[0].system``."""
    parts = [resource_type]
    for step in loc:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif step != "root":  # pydantic's marker for a RootModel's value, not a FHIR element
            parts.append(f".{step}")
    return "".join(parts)


def _shorten(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


def _check_profile(resource: dict[str, Any], profile: _Profile) -> None:
    problems = [*_missing_elements(resource, profile), *_slice_problems(resource, profile)]
    if not problems:
        return
    missing = any(problem.missing for problem in problems)
    raise TimkitError(
        422,
        IssueType.REQUIRED if missing else IssueType.VALUE,
        "; ".join(problem.message for problem in problems),
        requirement=REQUIREMENT,
        extra={"expression": list(dict.fromkeys(problem.expression for problem in problems))},
    )


def _missing_elements(resource: dict[str, Any], profile: _Profile) -> Iterator[_Problem]:
    for name in profile.required:
        # A primitive may be present as its extension alone (``_name``), e.g. data-absent-reason.
        if resource.get(name) in _EMPTY and resource.get(f"_{name}") is None:
            expression = f"{profile.resource_type}.{name}"
            yield _Problem(expression, f"{expression} is required by profile {profile.name}", True)


def _slice_problems(resource: dict[str, Any], profile: _Profile) -> Iterator[_Problem]:
    for slice_ in profile.slices:
        members = _members(resource, slice_)
        expression = ".".join((profile.resource_type, *slice_.container))
        where = f"{slice_.element_id} ({expression} with system {slice_.system})"
        if len(members) < slice_.min:
            yield _Problem(expression, f"{where} is required by profile {profile.name}", True)
        if slice_.max is not None and len(members) > slice_.max:
            message = f"{where} is allowed at most {slice_.max} time(s), found {len(members)}"
            yield _Problem(expression, message, False)
        yield from _code_problems(members, slice_, expression, where)


def _code_problems(
    members: list[dict[str, Any]], slice_: _SystemSlice, expression: str, where: str
) -> Iterator[_Problem]:
    if slice_.codes is None:
        return
    allowed = ", ".join(sorted(slice_.codes))
    for code in dict.fromkeys(member.get("code") for member in members):
        if code not in slice_.codes:
            message = f"{where}: code {code!r} is not one of {allowed}"
            yield _Problem(expression, message, code is None)


def _members(resource: dict[str, Any], slice_: _SystemSlice) -> list[dict[str, Any]]:
    """The codings/identifiers of ``slice_`` in ``resource``; ``[]`` where there are none."""
    node: Any = resource
    for step in slice_.container:
        if not isinstance(node, dict):
            return []
        node = node.get(step)
    if not isinstance(node, list):
        return []
    return [item for item in node if isinstance(item, dict) and item.get("system") == slice_.system]
