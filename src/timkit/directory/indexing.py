"""Turn one resource into its search index rows and full-text document.

Every SearchParameter of the resource's type is evaluated with its compiled extractor and the
selected nodes are normalised by parameter type:

* token: ``(system, code, text)``: Coding, CodeableConcept, Identifier, ContactPoint,
  booleans and codes; ``text`` (display / CodeableConcept.text) serves ``:text``;
* string: ``(norm, exact)`` for each string part (HumanName and Address split into parts);
  ``norm`` is case- and accent-folded (see :func:`fold`), used for prefix and ``:contains``;
* reference: ``(target type, target id)`` for relative, absolute and typed references;
* date: ``(low, high)`` instants bounding the value (a date covers its whole day);
* special ``near``: ``(latitude, longitude)`` of ``Location.position``.

The full-text document holds the words of the folded string leaves of the resource, separated
by single spaces (see :func:`text_words`); resources that point to others (HealthcareService,
PractitionerRole) also get their targets' text, as the live VZD indexes linked resources into
``_text``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from timkit.core.fhir import RESOURCE_TYPES
from timkit.directory.searchparams import REGISTRY, SearchParam

# Parameters answered from the resources table, never from index rows.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})
# Keys whose string values carry no searchable text.
_NO_TEXT = frozenset(
    {"system", "url", "reference", "profile", "div", "lastUpdated", "versionId", "source", "id"}
)
_STRING_PARTS = ("text", "family", "given", "prefix", "suffix", "line", "city", "district")
_STRING_PARTS_MORE = ("state", "postalCode", "country")
MAX_VALUE = 512
# A word: letters and digits. Everything else separates words, on both engines alike.
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Case- and accent-insensitive form: NFKD, combining marks dropped, casefolded.

    Cut to :data:`MAX_VALUE` characters, the longest value the index stores.
    """
    return _fold(text)[:MAX_VALUE]


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


@dataclass
class IndexRows:
    """All index rows of one resource version (without its row id)."""

    tokens: list[tuple[int, str, str, str]] = field(default_factory=list)
    strings: list[tuple[int, str, str]] = field(default_factory=list)
    references: list[tuple[int, str, str]] = field(default_factory=list)
    dates: list[tuple[int, str, str]] = field(default_factory=list)
    position: tuple[float, float] | None = None
    text: str = ""


def index_resource(resource: dict[str, Any]) -> IndexRows:
    """Index rows for ``resource`` (its ``resourceType`` must be a directory type)."""
    rows = IndexRows()
    for param in REGISTRY[resource["resourceType"]].values():
        if param.code in COLUMN_PARAMS:
            continue
        nodes = param.extract(resource)
        if nodes:
            _add(rows, param, nodes)
    rows.text = text_document(resource)
    return rows


def text_words(text: str) -> list[str]:
    """The words of ``text`` as the full-text index holds them: folded, letters and digits.

    Documents are stored as these words joined by spaces, so SQLite's ``unicode61`` tokenizer
    and PostgreSQL's text-search parser see the same words: left alone, PostgreSQL keeps
    ``betrieb@gematik.de``, ``1.2.276.0.76.4.54`` or ``1-2arvtst-ap000052`` as single tokens
    (e-mail, version, hyphenated word) that no word of a query ever equals.
    """
    return _WORD.findall(_fold(text))


def text_document(resource: dict[str, Any]) -> str:
    """The words of the string leaves of ``resource`` (its own full-text document)."""
    return " ".join(_WORD.findall(" ".join(_text_leaves(resource, []))))


def _add(rows: IndexRows, param: SearchParam, nodes: list[Any]) -> None:
    key = param.key
    if param.type in ("token", "uri"):
        for node in nodes:
            rows.tokens.extend((key, s, c, t) for s, c, t in _tokens(node))
    elif param.type == "string":
        for node in nodes:
            rows.strings.extend((key, fold(s), s[:MAX_VALUE]) for s in _strings(node))
    elif param.type == "reference":
        for node in nodes:
            target = parse_reference(node)
            if target is not None:
                rows.references.append((key, *target))
    elif param.type == "date":
        for node in nodes:
            bounds = _date_bounds(node)
            if bounds is not None:
                rows.dates.append((key, *bounds))
    elif param.type == "special" and param.code == "near":
        for node in nodes:
            if isinstance(node, dict) and "latitude" in node and "longitude" in node:
                rows.position = (float(node["latitude"]), float(node["longitude"]))


def _tokens(node: Any) -> list[tuple[str, str, str]]:
    if isinstance(node, bool):
        return [("", "true" if node else "false", "")]
    if isinstance(node, str | int | float):
        return [("", str(node)[:MAX_VALUE], "")]
    if not isinstance(node, dict):
        return []
    if "coding" in node or ("text" in node and "code" not in node and "value" not in node):
        out = [t for coding in node.get("coding", ()) for t in _tokens(coding)]
        if node.get("text"):
            out.append(("", "", fold(node["text"])))
        return out
    code = node.get("code", node.get("value"))
    if code is None:
        return []
    display = node.get("display", "")
    return [(node.get("system", ""), str(code)[:MAX_VALUE], fold(display) if display else "")]


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if not isinstance(node, dict):
        return []
    out: list[str] = []
    for part in (*_STRING_PARTS, *_STRING_PARTS_MORE):
        value = node.get(part)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


def parse_reference(node: Any) -> tuple[str, str] | None:
    """``(type, id)`` of a Reference (relative or absolute URL), else ``None``."""
    reference = node.get("reference") if isinstance(node, dict) else node
    if not isinstance(reference, str) or reference.startswith("#"):
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] not in RESOURCE_TYPES:
        return None
    return parts[-2], parts[-1]


def date_bounds(value: str) -> tuple[str, str]:
    """The instants a FHIR date/dateTime/instant covers, as sortable ISO strings."""
    if len(value) == 4:
        return f"{value}-01-01T00:00:00", f"{value}-12-31T23:59:59.999"
    if len(value) == 7:
        return f"{value}-01T00:00:00", f"{value}-31T23:59:59.999"
    if len(value) == 10:
        return f"{value}T00:00:00", f"{value}T23:59:59.999"
    instant = value[:19]
    digits = re.match(r"\.(\d{1,3})", value[19:])
    return instant, instant + (f".{digits.group(1).ljust(3, '9')}" if digits else ".999")


def _date_bounds(node: Any) -> tuple[str, str] | None:
    if isinstance(node, str):
        return date_bounds(node)
    if isinstance(node, dict) and ("start" in node or "end" in node):
        low = date_bounds(node["start"])[0] if "start" in node else "0000"
        high = date_bounds(node["end"])[1] if "end" in node else "9999"
        return low, high
    return None


def _text_leaves(node: Any, out: list[str]) -> list[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NO_TEXT or key == "resourceType":
                continue
            _text_leaves(value, out)
    elif isinstance(node, list):
        for value in node:
            _text_leaves(value, out)
    elif isinstance(node, str) and not node.startswith(("http://", "https://", "urn:")):
        out.append(fold(node))
    return out


# Resource types whose full-text document includes the text of the resources they point to.
LINKED_TEXT_TYPES = frozenset({"HealthcareService", "PractitionerRole"})
