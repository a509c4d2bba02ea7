"""The directory's SearchParameters: the api-vzd package's plus the R4 standard ones.

Loaded once at import from ``package/``: gematik's ``SearchParameter-*.json`` (api-vzd 1.1.1)
override the standard R4 definitions of the same base and code. Every expression is compiled
once (:mod:`timkit.directory.fhirpath`). Each (resource type, code) has a stable numeric
``key`` used in the index tables, so no lookup table is needed and keys never change between
runs or databases.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from timkit.core.fhir import RESOURCE_TYPES
from timkit.directory.fhirpath import Extractor, compile_path

PACKAGE = Path(__file__).parent / "package"
ParamType = Literal["token", "string", "reference", "date", "uri", "special", "number", "quantity"]


def param_key(resource_type: str, code: str) -> int:
    """Stable 31-bit key of a (resource type, parameter code) pair."""
    return zlib.crc32(f"{resource_type}.{code}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class SearchParam:
    """One search parameter as it applies to one resource type."""

    resource_type: str
    code: str
    type: ParamType
    expression: str
    url: str
    targets: tuple[str, ...] = ()
    extract: Extractor = field(compare=False, repr=False, default=lambda _r: [])

    @property
    def key(self) -> int:
        """Index key (see :func:`param_key`)."""
        return param_key(self.resource_type, self.code)


def _definitions() -> list[dict[str, Any]]:
    standard = json.loads((PACKAGE / "standard-search-parameters.json").read_text())["parameters"]
    gematik = [json.loads(p.read_text()) for p in sorted(PACKAGE.glob("SearchParameter-*.json"))]
    return [*standard, *gematik]


def _load() -> dict[str, dict[str, SearchParam]]:
    registry: dict[str, dict[str, SearchParam]] = {t: {} for t in RESOURCE_TYPES}
    for definition in _definitions():
        expression = definition.get("expression") or ""
        bases = definition["base"]
        types = RESOURCE_TYPES if set(bases) & {"Resource", "DomainResource"} else bases
        for resource_type in types:
            if resource_type not in registry or not expression:
                continue
            targets = tuple(t for t in definition.get("target", ()) if t in RESOURCE_TYPES)
            registry[resource_type][definition["code"]] = SearchParam(
                resource_type=resource_type,
                code=definition["code"],
                type=definition["type"],
                expression=expression,
                url=definition["url"],
                targets=targets,
                extract=compile_path(expression, resource_type),
            )
    return registry


REGISTRY: Mapping[str, Mapping[str, SearchParam]] = _load()
