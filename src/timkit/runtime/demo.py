"""The demo directory data set of the local federation.

For every configured Messenger-Service the directory gets the organisation's entry: an
Organization, its Location, a HealthcareService and a TI-M Endpoint
``matrix:u/empfang:<domain>``, so TI-M clients of the local federation find each other.
Synthetic practices and practitioners (:func:`timkit.directory.generate.generate`, fixed
seed) make searches look like the real directory. The content is deterministic, so the
directory's idempotent seed load changes nothing on restart.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from timkit.directory.capability import PROFILE
from timkit.directory.generate import (
    CONNECTION_TYPE,
    ORIGIN,
    PAYLOAD_TYPE,
    TELEMATIK_ID,
    generate,
)
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


def demo_resources(services: Sequence[MessengerServiceConfig]) -> Iterator[dict[str, Any]]:
    """The whole demo data set (see the module docstring)."""
    for service in services:
        yield from service_entries(service)
    yield from generate(DEMO_ORGANIZATIONS, DEMO_PRACTITIONERS, seed=1)


def write_demo_data(path: Path, services: Sequence[MessengerServiceConfig]) -> Path:
    """Write the demo data set as NDJSON to ``path`` (only when its content changed)."""
    content = b"".join(orjson.dumps(r) + b"\n" for r in demo_resources(services))
    if not path.exists() or path.read_bytes() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return path
