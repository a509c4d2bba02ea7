"""Parse FHIR search parameters into a :class:`SearchQuery`.

Input is the ordered list of ``(name, value)`` pairs of a search (query string and, for
``POST _search``, the form body). Repeated names are ANDed, comma-separated values ORed
(``\\,`` escapes a comma). Unknown parameters are collected in ``ignored``; with
``strict=True`` (``Prefer: handling=strict``) they are a 400 error instead. A value that
cannot be understood is always a 400 ``OperationOutcome`` naming the parameter. A parameter
nesting chains and ``_has`` more than :data:`MAX_NESTING` deep is a 400 (``too-costly``)
naming the limit, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from timkit.core.errors import IssueType, TimkitError
from timkit.core.fhir import RESOURCE_TYPES
from timkit.directory.searchparams import REGISTRY, SearchParam

MAX_NEAR_KM = 100.0
DEFAULT_COUNT = 20
MAX_COUNT = 1000
MAX_NESTING = 4
"""Most chain links and ``_has`` levels one search parameter may nest (each becomes a nested
sub-select; SQLite's parser overflows its stack around 20)."""
REQ_SEARCH = "ML-123880"

# Modifiers :func:`timkit.directory.storage.search.run_search` implements, per parameter type;
# any other modifier is a 400 rather than silently answered as if it were absent.
_MODIFIERS = {
    "token": {"not", "text", "missing"},
    "string": {"exact", "contains", "missing"},
    "reference": {"missing"},
    "date": {"missing"},
    "uri": {"missing"},
    "special": set(),
}
_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?\Z")
_RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_summary", "_total", "_cursor"}
)
_IGNORED_ALWAYS = frozenset({"_format", "_pretty", "_elements"})


class Criterion:
    """One AND-ed condition of a search."""


@dataclass(frozen=True)
class Match(Criterion):
    """``param[:modifier]=v1,v2`` on an indexed parameter."""

    param: SearchParam
    modifier: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class Column(Criterion):
    """``_id`` or ``_lastUpdated``, answered from the resources table."""

    column: Literal["id", "last_updated"]
    values: tuple[str, ...]


@dataclass(frozen=True)
class FullText(Criterion):
    """``_text`` / ``_content``: all terms must occur (see :mod:`fulltext`)."""

    query: str
    complex: bool = False


@dataclass(frozen=True)
class Near(Criterion):
    """``near=lat|lon|distance|km`` on Location."""

    latitude: float
    longitude: float
    km: float


@dataclass(frozen=True)
class Chain(Criterion):
    """``ref.inner``: resources whose reference ``via`` points at a match of ``inner``."""

    via: SearchParam
    target_type: str
    inner: Criterion


@dataclass(frozen=True)
class Has(Criterion):
    """``_has:Source:ref:inner``: resources some matching ``Source`` points at via ``ref``."""

    source_type: str
    via: SearchParam
    inner: Criterion


@dataclass(frozen=True)
class Include:
    """``_include`` / ``_revinclude`` of ``source_type:param[:target_type]`` (param None = *)."""

    source_type: str | None
    params: tuple[SearchParam, ...]
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass(frozen=True)
class SortKey:
    """One ``_sort`` key: a parameter code (``_id``, ``_lastUpdated`` or indexed)."""

    code: str
    descending: bool
    param: SearchParam | None = None


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: last row's sort values + rid, and the snapshot's max rid."""

    after: tuple[str | int, ...]
    max_rid: int

    def encode(self) -> str:
        """Opaque, URL-safe form used in paging links."""
        raw = json.dumps({"a": list(self.after), "m": self.max_rid}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Inverse of :meth:`encode`; a malformed cursor is a 400."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            after, max_rid = raw["a"], raw["m"]
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            raise _bad("_cursor", "is not a paging cursor issued by this server") from e
        valid = (
            isinstance(after, list)
            and after
            and all(isinstance(v, str | int) and not isinstance(v, bool) for v in after)
            and isinstance(max_rid, int)
            and not isinstance(max_rid, bool)
        )
        if not valid:
            raise _bad("_cursor", "is not a paging cursor issued by this server")
        return cls(after=tuple(after), max_rid=max_rid)


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search on one resource type."""

    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    includes: tuple[Include, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = DEFAULT_COUNT
    summary_count: bool = False
    total: Literal["none", "estimate", "accurate"] | None = None
    cursor: Cursor | None = None
    used: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = field(default=())


def _bad(name: str, problem: str) -> TimkitError:
    return TimkitError(
        400, IssueType.INVALID, f"search parameter {name!r} {problem}", requirement=REQ_SEARCH
    )


def split_values(value: str) -> tuple[str, ...]:
    """Split an OR list on unescaped commas; ``\\,`` stays a literal comma."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            current.append(nxt if nxt and nxt in ",$|\\" else char + nxt)
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return tuple(parts)


def parse_search(
    resource_type: str, pairs: list[tuple[str, str]], *, strict: bool = False
) -> SearchQuery:
    """Parse the search on ``resource_type`` (see the module docstring)."""
    criteria: list[Criterion] = []
    includes: list[Include] = []
    sort: tuple[SortKey, ...] = ()
    count = DEFAULT_COUNT
    summary_count = False
    total: Literal["none", "estimate", "accurate"] | None = None
    cursor: Cursor | None = None
    used: list[tuple[str, str]] = []
    ignored: list[str] = []
    complex_text = any(n == "_complexSearch" and v == "true" for n, v in pairs)
    for name, value in pairs:
        _check_text(name, name)
        _check_text(name, value)
        base = name.split(":", 1)[0]
        if base in _IGNORED_ALWAYS or name == "_complexSearch":
            if name == "_complexSearch":
                used.append((name, value))
            continue
        if base in _RESULT_PARAMS:
            if base == "_count":
                count = _count(value)
            elif base == "_sort":
                sort = _sort(resource_type, value)
            elif base in ("_include", "_revinclude"):
                includes.append(_include(name, value))
            elif base == "_summary":
                if value != "count":
                    raise _bad(name, f"value {value!r} is not supported (only 'count')")
                summary_count = True
            elif base == "_total":
                if value not in ("none", "estimate", "accurate"):
                    raise _bad(name, "must be none, estimate or accurate")
                total = value  # type: ignore[assignment]
            elif base == "_cursor":
                cursor = Cursor.decode(value)
                continue
            used.append((name, value))
            continue
        criterion = _criterion(resource_type, name, value, complex_text=complex_text)
        if criterion is None:
            if strict:
                raise TimkitError(
                    400,
                    IssueType.NOT_SUPPORTED,
                    f"unknown search parameter {name!r} for {resource_type}"
                    " (Prefer: handling=strict)",
                    requirement=REQ_SEARCH,
                )
            ignored.append(name)
            continue
        criteria.append(criterion)
        used.append((name, value))
    return SearchQuery(
        resource_type=resource_type,
        criteria=tuple(criteria),
        includes=tuple(includes),
        sort=sort,
        count=count,
        summary_count=summary_count,
        total=total,
        cursor=cursor,
        used=tuple(used),
        ignored=tuple(ignored),
    )


def _check_text(name: str, text: str) -> None:
    """Reject what no database can store or compare: NUL and lone surrogates (a 400)."""
    if text.isascii():
        if "\x00" in text:
            raise _bad(name, "contains a NUL character")
        return
    try:
        text.encode()
    except UnicodeEncodeError as e:
        raise _bad(name, "is not valid Unicode text") from e


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError as e:
        raise _bad("_count", "must be a non-negative integer") from e
    if count < 0:
        raise _bad("_count", "must be a non-negative integer")
    return min(count, MAX_COUNT)


def _sort(resource_type: str, value: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for raw in value.split(","):
        descending = raw.startswith("-")
        code = raw.lstrip("-")
        if code in ("_id", "_lastUpdated"):
            keys.append(SortKey(code, descending))
            continue
        param = REGISTRY[resource_type].get(code)
        if param is None or param.type not in ("string", "token", "date", "uri"):
            raise _bad("_sort", f"cannot sort {resource_type} by {code!r}")
        keys.append(SortKey(code, descending, param))
    return tuple(keys)


def _include(name: str, value: str) -> Include:
    reverse = name.startswith("_revinclude")
    modifier = name.partition(":")[2]
    if modifier not in ("", "iterate", "recurse"):
        raise _bad(name, f"has an unknown modifier {modifier!r}")
    iterate = modifier in ("iterate", "recurse")
    if value == "*":
        return Include(None, (), None, iterate, reverse)
    parts = value.split(":")
    if len(parts) not in (2, 3) or parts[0] not in RESOURCE_TYPES:
        raise _bad(name, f"value {value!r} is not SourceType:param[:TargetType]")
    source_type, code = parts[0], parts[1]
    target_type = parts[2] if len(parts) == 3 else None
    if code == "*":
        params = tuple(p for p in REGISTRY[source_type].values() if p.type == "reference")
    else:
        param = REGISTRY[source_type].get(code)
        if param is None or param.type != "reference":
            raise _bad(name, f"{source_type} has no reference parameter {code!r}")
        params = (param,)
    if target_type is not None and target_type not in RESOURCE_TYPES:
        raise _bad(name, f"target type {target_type!r} is not a directory resource type")
    return Include(source_type, params, target_type, iterate, reverse)


def _criterion(
    resource_type: str, name: str, value: str, *, complex_text: bool, depth: int = 0
) -> Criterion | None:
    """The criterion for ``name=value`` on ``resource_type``; ``None`` if unknown.

    ``depth`` counts the chain links and ``_has`` levels already inside (at most
    :data:`MAX_NESTING`, else a 400 naming the limit).
    """
    if depth > MAX_NESTING:
        raise TimkitError(
            400,
            IssueType.TOO_COSTLY,
            f"search parameter nests chains and _has more than {MAX_NESTING} levels deep"
            f" (at {name[:80]!r}); the limit is {MAX_NESTING}",
            requirement=REQ_SEARCH,
        )
    if name.startswith("_has:"):
        return _has(resource_type, name, value, complex_text=complex_text, depth=depth)
    head, dot, rest = name.partition(".")
    code, _, modifier = head.partition(":")
    if dot:
        return _chain(
            resource_type, code, modifier, rest, value, complex_text=complex_text, depth=depth
        )
    if code in ("_text", "_content"):
        if modifier not in ("", "contains", "exact"):
            raise _bad(name, f"has an unknown modifier {modifier!r}")
        if not value.strip():
            raise _bad(name, "must not be empty")
        return FullText(value, complex_text)
    if code in ("_id", "_lastUpdated") and modifier:
        raise _bad(name, f"has an unsupported modifier {modifier!r}")
    if code == "_id":
        return Column("id", split_values(value))
    if code == "_lastUpdated":
        values = split_values(value)
        for v in values:
            date_value(name, v)
        return Column("last_updated", values)
    param = REGISTRY[resource_type].get(code)
    if param is None:
        return None
    if param.type == "special":
        if param.code != "near":
            return None
        return _near(name, value)
    allowed = _MODIFIERS.get(param.type, set())
    if (
        modifier
        and modifier not in allowed
        and not (param.type == "reference" and modifier in param.targets)
    ):
        raise _bad(name, f"has an unsupported modifier {modifier!r}")
    values = split_values(value)
    if modifier == "missing" and value not in ("true", "false"):
        raise _bad(name, "with :missing must be true or false")
    if param.type == "date" and modifier != "missing":
        for v in values:
            date_value(name, v)
    return Match(param, modifier or None, values)


def _chain(
    resource_type: str,
    code: str,
    modifier: str,
    rest: str,
    value: str,
    *,
    complex_text: bool,
    depth: int,
) -> Criterion | None:
    via = REGISTRY[resource_type].get(code)
    if via is None or via.type != "reference":
        return None
    if modifier and modifier not in via.targets:
        raise _bad(f"{code}:{modifier}.{rest}", f"{code} does not refer to {modifier!r}")
    targets = (modifier,) if modifier else via.targets
    if len(targets) != 1 or targets[0] not in RESOURCE_TYPES:
        raise _bad(
            f"{code}.{rest}", "needs a single target type (use param:Type.name for a choice)"
        )
    inner = _criterion(targets[0], rest, value, complex_text=complex_text, depth=depth + 1)
    if inner is None:
        return None
    return Chain(via, targets[0], inner)


def _has(
    resource_type: str, name: str, value: str, *, complex_text: bool, depth: int
) -> Criterion | None:
    parts = name.split(":", 3)
    if len(parts) != 4:
        raise _bad(name, "must be _has:SourceType:reference:parameter")
    _, source_type, ref_code, inner_name = parts
    if source_type not in RESOURCE_TYPES:
        raise _bad(name, f"source type {source_type!r} is not a directory resource type")
    via = REGISTRY[source_type].get(ref_code)
    if via is None or via.type != "reference" or resource_type not in via.targets:
        raise _bad(name, f"{source_type}.{ref_code} does not refer to {resource_type}")
    inner = _criterion(source_type, inner_name, value, complex_text=complex_text, depth=depth + 1)
    if inner is None:
        return None
    return Has(source_type, via, inner)


def _near(name: str, value: str) -> Near:
    parts = value.split("|")
    if len(parts) != 4 or parts[3] != "km":
        raise _bad(name, "must be latitude|longitude|distance|km")
    try:
        latitude, longitude, km = float(parts[0]), float(parts[1]), float(parts[2])
    except ValueError as e:
        raise _bad(name, "must have numeric latitude, longitude and distance") from e
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise _bad(name, "has a latitude or longitude out of range")
    if not 0 < km <= MAX_NEAR_KM:
        raise _bad(name, f"distance must be more than 0 and at most {MAX_NEAR_KM:g} km")
    return Near(latitude, longitude, km)


def date_value(name: str, value: str) -> tuple[str, str]:
    """Split a date search value into ``(prefix, date)``; a malformed date is a 400.

    The date is a FHIR date or dateTime (``2024``, ``2024-05``, ``2024-05-17``,
    ``2024-05-17T10:00[:00[.000]][Z|+02:00]``) that names a real day and time.
    """
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in _DATE_PREFIXES else value
    if not _DATE.match(text) or not _real_date(text):
        raise _bad(name, f"value {value!r} is not a FHIR date")
    return prefix, text


def _real_date(text: str) -> bool:
    try:
        if "T" in text:
            datetime.fromisoformat(text)
        elif len(text) == 10:
            date.fromisoformat(text)
        elif len(text) == 7:
            date.fromisoformat(f"{text}-01")
    except ValueError:
        return False
    return True
