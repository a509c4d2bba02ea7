"""The VZD-FHIR-Directory's vocabulary, shared by the FHIR-Directory and the FHIR-Proxy.

Both components speak FHIR R4 with gematik's directory profiles (api-vzd 1.1.1); what both
need lives here so neither imports the other:

* the canonical URLs: :data:`PROFILE` (``<Type>Directory`` profiles, one per type in
  :data:`RESOURCE_TYPES`), the ``Origin`` tag system, the TelematikID identifier system and the
  code systems of TI-M Endpoints;
* :func:`parse_resource_json`: a request body parsed into a resource dict, or the
  OperationOutcome-ready :class:`~timkit.core.errors.TimkitError`;
* the FHIR-Directory's bearer token, the shared secret between it and its FHIR-Proxy
  (:func:`read_token_file` fails closed, :func:`authorization` builds the header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from timkit.core import jsonbody
from timkit.core.errors import ConfigError

# --- canonical URLs ---------------------------------------------------------------------------

PROFILE = "https://gematik.de/fhir/directory/StructureDefinition/{}Directory"
"""The gematik profile of a directory resource type (``PROFILE.format("Endpoint")``)."""
ORIGIN = "https://gematik.de/fhir/directory/CodeSystem/Origin"
TELEMATIK_ID = "https://gematik.de/fhir/sid/telematik-id"
CONNECTION_TYPE = "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryConnectionType"
PAYLOAD_TYPE = "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryPayloadType"
ORGANIZATION_PROFILE = PROFILE.format("Organization")
LOCATION_PROFILE = PROFILE.format("Location")
ENDPOINT_PROFILE = PROFILE.format("Endpoint")
HEALTHCARE_SERVICE_PROFILE = PROFILE.format("HealthcareService")
PRACTITIONER_PROFILE = PROFILE.format("Practitioner")
PRACTITIONER_ROLE_PROFILE = PROFILE.format("PractitionerRole")

# --- resource types ---------------------------------------------------------------------------

RESOURCE_TYPES = (
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "HealthcareService",
    "Location",
    "Endpoint",
)
"""The six resource types of the directory, in the order the store registers them."""
DIRECTORY_TYPES: frozenset[str] = frozenset(RESOURCE_TYPES)

# --- request bodies ---------------------------------------------------------------------------


def parse_resource_json(raw: bytes) -> dict[str, Any]:
    """A request body parsed as one JSON object (``timkit.core.jsonbody``).

    Raises:
        TimkitError: 400 ``structure`` when it is not UTF-8, not JSON (naming where) or no
            object; 400 ``too-costly`` when it is nested deeper than 1024 levels.
    """
    try:
        return jsonbody.parse_json_object(raw)
    except jsonbody.JsonBodyError as e:
        raise e.to_error(jsonbody.FHIR_CODES) from None


# --- the FHIR-Directory's bearer token --------------------------------------------------------

MIN_TOKEN_LENGTH = 32
"""Shortest accepted token (``secrets.token_urlsafe(32)`` gives 43 characters)."""


def read_token_file(path: Path, key: str) -> str:
    """The FHIR-Directory's token in ``path`` (surrounding white space stripped).

    Args:
        path: the token file.
        key: the config key naming it, for the error message.

    Raises:
        ConfigError: the file is missing, unreadable, or holds fewer than
            :data:`MIN_TOKEN_LENGTH` characters.
    """
    try:
        token = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read the FHIR-Directory token file {path}: {e.__class__.__name__}",
            path=key,
        ) from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"the FHIR-Directory token in {path} must have at least {MIN_TOKEN_LENGTH} characters",
            path=key,
        )
    return token


def authorization(token: str) -> dict[str, str]:
    """The header the FHIR-Proxy (and tools) send to the FHIR-Directory."""
    return {"Authorization": f"Bearer {token}"}
