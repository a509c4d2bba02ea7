"""Run a :class:`SearchQuery` as SQL against the index tables.

Each criterion becomes one ``rid IN (…)`` (or ``EXISTS``) condition on the ``resources`` row
(alias ``r``, or ``t1``, ``t2``… inside chains), so criteria AND together and the database's
planner picks the most selective index. Pages are keyset-paginated on the sort values plus
``rid`` and pinned to the first page's highest ``rid``: resources created after the first page
never shift later pages, and a deleted resource simply drops out, so paging links stay stable
under concurrent writes.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from timkit.core.db import Cursor as DbCursor
from timkit.core.errors import IssueType, TimkitError
from timkit.core.fhir import RESOURCE_TYPES
from timkit.directory.indexing import date_bounds, fold
from timkit.directory.query import (
    REQ_SEARCH,
    Chain,
    Column,
    Criterion,
    Cursor,
    FullText,
    Has,
    Include,
    Match,
    Near,
    SearchQuery,
    date_value,
)
from timkit.directory.searchparams import REGISTRY
from timkit.directory.storage.fulltext import fts5_query, tsquery
from timkit.directory.storage.store import Store, Stored

MAX_INCLUDE_ROUNDS = 4
_TOP = "\U0010ffff"
_DATETIME = re.compile(r"([^T]+T\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?\Z")


@dataclass(frozen=True)
class SearchResult:
    """One page: matches, included resources, total (when known) and the next cursor."""

    matches: list[Stored]
    included: list[Stored]
    total: int | None
    next_cursor: Cursor | None


def _rid(alias: str) -> str:
    """The row-id expression of ``alias``: a table alias, or already a column (``x1.trid``)."""
    return alias if "." in alias else f"{alias}.rid"


def _needs_target_row(inner: Criterion) -> bool:
    """Whether a chain must join the target's ``resources`` row to test ``inner``.

    Columns live there. A negation (``:not``, ``:missing=true``) holds where index rows are
    absent, which they also are for a deleted target or one never created (``trid`` NULL),
    so it must be tested on a live target row; positive criteria need index rows, which
    exist for live resources only.
    """
    if isinstance(inner, Column):
        return True
    return isinstance(inner, Match) and (
        inner.modifier == "not" or (inner.modifier == "missing" and inner.values[0] == "true")
    )


class _Sql:
    """Accumulates a WHERE clause and its parameters."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.params: list[Any] = []
        self._aliases = itertools.count(1)

    def alias(self) -> str:
        return f"t{next(self._aliases)}"

    def criterion(self, criterion: Criterion, alias: str, *, drive: bool = False) -> str:
        """SQL for ``criterion`` on the resources row ``alias``.

        ``drive`` compiles an uncorrelated ``rid IN (…)`` sub-select, the set the planner
        starts from; otherwise a correlated ``EXISTS`` probe through the ``(rid, key)``
        indexes, which costs per candidate row instead of per matching row.
        """
        if isinstance(criterion, Match):
            return self._match(criterion, alias, drive=drive)
        if isinstance(criterion, Column):
            return self._column(criterion, alias)
        if isinstance(criterion, FullText):
            return self._fulltext(criterion, alias)
        if isinstance(criterion, Near):
            return self._near(criterion, alias)
        if isinstance(criterion, Chain):
            ref = f"x{next(self._aliases)}"
            self.params.extend((criterion.via.key, criterion.target_type))
            if _needs_target_row(criterion.inner):
                inner = self.alias()
                source = f"FROM idx_ref {ref} JOIN resources {inner} ON {inner}.rid = {ref}.trid"
                condition = self.criterion(criterion.inner, inner, drive=drive)
                condition = f"{inner}.deleted = 0 AND {condition}"
            else:  # index rows exist for live resources only: no visit to the target row
                source = f"FROM idx_ref {ref}"
                condition = self.criterion(criterion.inner, f"{ref}.trid", drive=drive)
                lookup = f"{ref}.trid IN ("
                if drive and self.dialect == "postgresql" and condition.startswith(lookup):
                    # PostgreSQL would hash-join every reference row of the parameter; an
                    # array of the (few) target rids makes it look each one up in the index.
                    inner = condition.removeprefix(lookup).removesuffix(")")
                    condition = f"{ref}.trid = ANY(ARRAY({inner}))"
            if drive:
                return (
                    f"{_rid(alias)} IN (SELECT {ref}.rid {source} WHERE {ref}.key = ?"
                    f" AND {ref}.ttype = ? AND {condition})"
                )
            return (
                f"EXISTS (SELECT 1 {source} WHERE {ref}.rid = {_rid(alias)} AND {ref}.key = ?"
                f" AND {ref}.ttype = ? AND {condition})"
            )
        if isinstance(criterion, Has):
            source = self.alias()
            self.params.append(criterion.via.key)
            condition = self.criterion(criterion.inner, source, drive=drive)
            if drive:
                return (
                    f"{_rid(alias)} IN (SELECT x.trid AS rid FROM idx_ref x"
                    f" JOIN resources {source} ON {source}.rid = x.rid"
                    f" WHERE x.key = ? AND {source}.deleted = 0 AND {condition})"
                )
            return (
                f"EXISTS (SELECT 1 FROM idx_ref x JOIN resources {source} ON {source}.rid = x.rid"
                f" WHERE x.key = ? AND x.trid = {_rid(alias)}"
                f" AND {source}.deleted = 0 AND {condition})"
            )
        raise TypeError(criterion)  # pragma: no cover - exhaustive

    def _match(self, match: Match, alias: str, *, drive: bool) -> str:
        param = match.param
        table = {
            "token": "idx_token",
            "uri": "idx_token",
            "string": "idx_string",
            "reference": "idx_ref",
            "date": "idx_date",
        }.get(param.type)
        if table is None:
            raise TimkitError(
                400,
                IssueType.NOT_SUPPORTED,
                f"search on {param.type} parameter {param.code!r} is not supported",
                requirement=REQ_SEARCH,
            )
        if match.modifier == "missing":
            self.params.append(param.key)
            negate = "NOT " if match.values[0] == "true" else ""
            return f"{negate}EXISTS (SELECT 1 FROM {table} WHERE rid = {_rid(alias)} AND key = ?)"
        conditions = [
            self._value(param.type, match.modifier, param.targets, v) for v in match.values
        ]
        values_sql = " OR ".join(c for c, _ in conditions)
        self.params.append(param.key)
        for _, p in conditions:
            self.params.extend(p)
        negate = "NOT " if match.modifier == "not" else ""
        if drive and not negate:
            return f"{_rid(alias)} IN (SELECT rid FROM {table} WHERE key = ? AND ({values_sql}))"
        return (
            f"{negate}EXISTS (SELECT 1 FROM {table} WHERE rid = {_rid(alias)} AND key = ?"
            f" AND ({values_sql}))"
        )

    def _value(
        self, kind: str, modifier: str | None, targets: Sequence[str], value: str
    ) -> tuple[str, list[Any]]:
        if kind in ("token", "uri"):
            if modifier == "text":
                folded = fold(value)
                return "(text >= ? AND text < ?)", [folded, folded + _TOP]
            if "|" in value and kind == "token":
                system, _, code = value.partition("|")
                if not code:
                    return "system = ?", [system]
                return "(code = ? AND system = ?)", [code, system]
            return "code = ?", [value]
        if kind == "string":
            if modifier == "exact":
                return "exact = ?", [value]
            folded = fold(value)
            if modifier == "contains":
                escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                return "norm LIKE ? ESCAPE '\\'", [f"%{escaped}%"]
            return "(norm >= ? AND norm < ?)", [folded, folded + _TOP]
        if kind == "reference":
            target_type = modifier if modifier in RESOURCE_TYPES else None
            parts = value.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] in RESOURCE_TYPES:
                return "(ttype = ? AND tid = ?)", [parts[-2], parts[-1]]
            types = [target_type] if target_type else list(targets)
            marks = ",".join("?" * len(types))
            return f"(tid = ? AND ttype IN ({marks}))", [value, *types]
        prefix, date = date_value("date", value)
        return _date_condition("low", "high", prefix, date)

    def _column(self, column: Column, alias: str) -> str:
        if column.column == "id":
            marks = ",".join("?" * len(column.values))
            self.params.extend(column.values)
            return f"{alias}.id IN ({marks})"
        parts = []
        for value in column.values:
            prefix, date = date_value("_lastUpdated", value)
            sql, params = _date_condition(
                f"{alias}.last_updated",
                f"{alias}.last_updated",
                prefix,
                date,
                bounds=last_updated_bounds,
            )
            parts.append(sql)
            self.params.extend(params)
        return "(" + " OR ".join(parts) + ")"

    def _fulltext(self, text: FullText, alias: str) -> str:
        if self.dialect == "sqlite":
            self.params.append(fts5_query(text.query, complex_syntax=text.complex))
            return f"{_rid(alias)} IN (SELECT rowid AS rid FROM fts WHERE fts MATCH ?)"
        self.params.append(tsquery(text.query, complex_syntax=text.complex))
        return f"{_rid(alias)} IN (SELECT rid FROM fts WHERE doc @@ to_tsquery('simple', ?))"

    def _near(self, near: Near, alias: str) -> str:
        dlat = near.km / 111.0
        dlon = near.km / max(0.01, 111.0 * math.cos(math.radians(near.latitude)))
        self.params.extend(
            (
                near.latitude - dlat,
                near.latitude + dlat,
                near.longitude - dlon,
                near.longitude + dlon,
                near.latitude,
                near.longitude,
                near.km,
            )
        )
        return (
            f"{_rid(alias)} IN (SELECT rid FROM idx_geo WHERE lat BETWEEN ? AND ?"
            " AND lon BETWEEN ? AND ? AND tk_distance(lat, lon, ?, ?) <= ?)"
        )


def last_updated_bounds(value: str) -> tuple[str, str]:
    """The instants a search date covers, in the stored ``resources.last_updated`` form.

    :func:`timkit.directory.storage.store.now` stores UTC with milliseconds and ``+00:00``
    (``2024-05-17T08:30:00.123+00:00``), so the bounds are written the same way (a time with
    an offset is converted to UTC, one without is taken as UTC) and compare as strings.
    """
    match = _DATETIME.match(value)
    if match is None:
        low, high = date_bounds(value)
        return f"{low[:19]}.000+00:00", f"{high[:19]}.999+00:00"
    clock, fraction, zone = match.groups()
    seconds = len(clock) > 16
    instant = datetime.fromisoformat(clock + (zone or "Z")).astimezone(UTC)
    stem = instant.replace(tzinfo=None).isoformat(timespec="seconds")
    if not seconds:
        return f"{stem[:16]}:00.000+00:00", f"{stem[:16]}:59.999+00:00"
    digits = (fraction or "")[:3]
    return f"{stem}.{digits.ljust(3, '0')}+00:00", f"{stem}.{digits.ljust(3, '9')}+00:00"


_UNSELECTIVE_CODES = frozenset(
    {"active", "status", "payload-type", "connection-type", "_tag", "_profile", "address-use"}
)


def rank(criterion: Criterion) -> int:
    """Estimated selectivity, lower = fewer matches; the lowest drives the query."""
    if isinstance(criterion, Column):
        return 0 if criterion.column == "id" else 5
    if isinstance(criterion, FullText):
        return 1
    if isinstance(criterion, Near):
        return 3
    if isinstance(criterion, Chain | Has):
        return rank(criterion.inner) + 1
    if isinstance(criterion, Match):
        if criterion.modifier in ("not", "missing"):
            return 9
        if criterion.param.code in _UNSELECTIVE_CODES:
            return 8
        if criterion.modifier == "contains" or criterion.param.type == "date":
            return 6
        return 2
    return 9


def _date_condition(
    low: str,
    high: str,
    prefix: str,
    date: str,
    *,
    bounds: Callable[[str], tuple[str, str]] = date_bounds,
) -> tuple[str, list[Any]]:
    """SQL comparing a stored ``[low, high]`` interval with a search date (R4 semantics)."""
    vlow, vhigh = bounds(date)
    conditions = {
        "eq": (f"({low} >= ? AND {high} <= ?)", [vlow, vhigh]),
        "ap": (f"({low} >= ? AND {high} <= ?)", [vlow, vhigh]),
        "ne": (f"NOT ({low} >= ? AND {high} <= ?)", [vlow, vhigh]),
        "gt": (f"{high} > ?", [vhigh]),
        "lt": (f"{low} < ?", [vlow]),
        "ge": (f"{high} >= ?", [vlow]),
        "le": (f"{low} <= ?", [vhigh]),
        "sa": (f"{low} > ?", [vhigh]),
        "eb": (f"{high} < ?", [vlow]),
    }
    return conditions[prefix]


def _sort_expression(query: SearchQuery) -> list[tuple[str, bool]]:
    """``(SQL expression, descending)`` per sort key, ``r.rid`` last as the tie-breaker."""
    keys: list[tuple[str, bool]] = []
    for key in query.sort:
        if key.code == "_id":
            keys.append(("r.id", key.descending))
        elif key.code == "_lastUpdated":
            keys.append(("r.last_updated", key.descending))
        elif key.param is not None:
            table, column = {
                "string": ("idx_string", "norm"),
                "token": ("idx_token", "code"),
                "uri": ("idx_token", "code"),
                "date": ("idx_date", "low"),
            }[key.param.type]
            aggregate = "MAX" if key.descending else "MIN"
            keys.append(
                (
                    f"COALESCE((SELECT {aggregate}({column}) FROM {table} s"
                    f" WHERE s.rid = r.rid AND s.key = {key.param.key}), '')",
                    key.descending,
                )
            )
    keys.append(("r.rid", False))
    return keys


def _keyset(keys: list[tuple[str, bool]], after: Sequence[Any]) -> tuple[str, list[Any]]:
    """``(k1 > a1) OR (k1 = a1 AND k2 > a2) …`` honouring each key's direction."""
    keys = [("+r.rid" if expr == "r.rid" else expr, descending) for expr, descending in keys]
    ors: list[str] = []
    params: list[Any] = []
    for i, (expr, descending) in enumerate(keys):
        ands = [f"{keys[j][0]} = ?" for j in range(i)]
        ands.append(f"{expr} {'<' if descending else '>'} ?")
        params.extend(after[: i + 1])
        ors.append("(" + " AND ".join(ands) + ")")
    return "(" + " OR ".join(ors) + ")", params


def run_search(store: Store, cur: DbCursor, query: SearchQuery) -> SearchResult:
    """Execute ``query``: one page of matches plus its ``_include``/``_revinclude``."""
    sql = _Sql(store.dialect)
    where = ["r.type = ?", "r.deleted = 0"]
    sql.params.append(query.resource_type)
    ordered = sorted(query.criteria, key=rank)
    driver: tuple[str, list[Any]] | None = None
    driver_type: str | None = None
    if ordered and not query.sort and rank(ordered[0]) < 8 and not isinstance(ordered[0], Column):
        lead = _Sql(store.dialect)
        fragment = lead.criterion(ordered[0], "r", drive=True)
        driver = (fragment.removeprefix("r.rid IN (").removesuffix(")"), lead.params)
        # index rows are keyed per resource type: only a full-text driver mixes types
        driver_type = None if isinstance(ordered[0], FullText) else query.resource_type
        rest = _Sql(store.dialect)
        rest.params.append(query.resource_type)
        rest_where = ["r.type = ?", "r.deleted = 0"]
        rest_where += [rest.criterion(c, "r") for c in ordered[1:]]
        driven = (" AND ".join(rest_where), rest.params)
    for position, criterion in enumerate(ordered):
        where.append(sql.criterion(criterion, "r", drive=position == 0 and rank(criterion) < 8))
    base_params = list(sql.params)
    base_where = " AND ".join(where)
    total: int | None = None
    count_wanted = query.summary_count or query.total in ("accurate", "estimate")
    if count_wanted:
        row = cur.execute(f"SELECT COUNT(*) FROM resources r WHERE {base_where}", base_params)
        total = int(row.fetchone()[0])
    if query.summary_count or query.count == 0:
        return SearchResult([], [], total, None)
    if query.cursor is None:
        max_rid = int(cur.execute("SELECT COALESCE(MAX(rid), 0) FROM resources").fetchone()[0])
    else:
        max_rid = query.cursor.max_rid
    keys = _sort_expression(query)
    # "+r.rid": the snapshot and keyset bounds filter rows but must not steer the planner
    # into a range scan of every resource of the type (unary plus hides the column).
    page_where = f"{base_where} AND +r.rid <= ?"
    page_params = [*base_params, max_rid]
    if query.cursor is not None:
        after = query.cursor.after
        if (
            len(after) != len(keys)
            or not isinstance(after[-1], int)
            or not all(isinstance(v, str) for v in after[:-1])
        ):
            raise TimkitError(
                400,
                IssueType.INVALID,
                "search parameter '_cursor' does not belong to this search's _sort",
                requirement=REQ_SEARCH,
            )
        condition, params = _keyset(keys, query.cursor.after)
        page_where += f" AND {condition}"
        page_params.extend(params)
    order = ", ".join(f"{e} {'DESC' if d else 'ASC'}" for e, d in keys)
    select = ", ".join(e for e, _ in keys)
    if driver is not None:
        after_rid = int(query.cursor.after[-1]) if query.cursor is not None else 0
        found = _driven(
            cur,
            query.resource_type,
            driver_type,
            driver,
            driven,
            max_rid,
            after_rid,
            query.count + 1,
        )
        rows = [(rid,) for rid in found]
    else:
        rows = cur.execute(
            f"SELECT {select} FROM resources r WHERE {page_where} ORDER BY {order} LIMIT ?",
            [*page_params, query.count + 1],
        ).fetchall()
    more = len(rows) > query.count
    rows = rows[: query.count]
    rids = [int(r[-1]) for r in rows]
    matches = store.by_rids(cur, rids)
    next_cursor = Cursor(tuple(rows[-1]), max_rid) if more and rows else None
    if total is None and query.cursor is None and not more and query.total != "none":
        total = len(matches)
    included = _includes(store, cur, matches, query.includes)
    return SearchResult(matches, included, total, next_cursor)


def _driven(
    cur: DbCursor,
    resource_type: str,
    typed: str | None,
    driver: tuple[str, list[Any]],
    rest: tuple[str, list[Any]],
    max_rid: int,
    after_rid: int,
    limit: int,
) -> list[int]:
    """The first ``limit`` rids (ascending) of the driver set that pass the other criteria.

    The driver (most selective criterion) yields its candidates in rid order; the other
    criteria are probed on growing chunks of them, so a page costs per candidate looked at,
    not per resource the whole search matches.
    """
    driver_sql, driver_params = driver
    rows = cur.execute(
        f"SELECT DISTINCT d.rid FROM ({driver_sql}) d JOIN resources c ON c.rid = d.rid"
        " WHERE c.type = ? AND d.rid <= ? AND d.rid > ? ORDER BY d.rid"
        if typed is None
        else f"SELECT DISTINCT d.rid FROM ({driver_sql}) d WHERE d.rid <= ? AND d.rid > ?"
        " ORDER BY d.rid",
        [*driver_params, resource_type, max_rid, after_rid]
        if typed is None
        else [*driver_params, max_rid, after_rid],
    ).fetchall()
    candidates = [int(r[0]) for r in rows]
    rest_where, rest_params = rest
    found: list[int] = []
    start, size = 0, 2 * limit
    while start < len(candidates) and len(found) < limit:
        chunk = candidates[start : start + size]
        marks = ",".join("?" * len(chunk))
        matched = cur.execute(
            f"SELECT r.rid FROM resources r WHERE r.rid IN ({marks}) AND {rest_where}"
            " ORDER BY r.rid",
            [*chunk, *rest_params],
        ).fetchall()
        found.extend(int(m[0]) for m in matched)
        start += size
        size = min(size * 2, 4096)
    return found[:limit]


def _includes(
    store: Store, cur: DbCursor, matches: list[Stored], includes: Sequence[Include]
) -> list[Stored]:
    seen = {m.rid for m in matches}
    included: list[Stored] = []
    frontier = matches
    for round_number in range(MAX_INCLUDE_ROUNDS):
        active = [i for i in includes if round_number == 0 or i.iterate]
        if not active or not frontier:
            break
        found: list[int] = []
        for include in active:
            found.extend(_include_rids(cur, frontier, include))
        new = [rid for rid in dict.fromkeys(found) if rid not in seen]
        seen.update(new)
        frontier = store.by_rids(cur, new)
        included.extend(frontier)
    return included


def _include_rids(cur: DbCursor, sources: list[Stored], include: Include) -> list[int]:
    if include.reverse:
        return _revinclude_rids(cur, sources, include)
    relevant = [s for s in sources if include.source_type in (None, s.type)]
    if not relevant:
        return []
    params = include.params or tuple(
        p for t in RESOURCE_TYPES for p in REGISTRY[t].values() if p.type == "reference"
    )
    keys = sorted({p.key for p in params})
    rid_marks = ",".join("?" * len(relevant))
    key_marks = ",".join("?" * len(keys))
    target = " AND x.ttype = ?" if include.target_type else ""
    rows = cur.execute(
        "SELECT t.rid FROM idx_ref x JOIN resources t ON t.rid = x.trid"
        f" WHERE x.rid IN ({rid_marks}) AND x.key IN ({key_marks}) AND t.deleted = 0{target}"
        " ORDER BY t.rid",
        [*(s.rid for s in relevant), *keys, *([include.target_type] if target else [])],
    ).fetchall()
    return [int(r[0]) for r in rows]


def _revinclude_rids(cur: DbCursor, targets: list[Stored], include: Include) -> list[int]:
    params = include.params or tuple(
        p for t in RESOURCE_TYPES for p in REGISTRY[t].values() if p.type == "reference"
    )
    keys = sorted({p.key for p in params})
    out: list[int] = []
    for target_type in sorted({t.type for t in targets}):
        if include.target_type not in (None, target_type):
            continue
        ids = [t.id for t in targets if t.type == target_type]
        id_marks = ",".join("?" * len(ids))
        key_marks = ",".join("?" * len(keys))
        rows = cur.execute(
            "SELECT x.rid FROM idx_ref x JOIN resources s ON s.rid = x.rid"
            f" WHERE x.ttype = ? AND x.tid IN ({id_marks}) AND x.key IN ({key_marks})"
            " AND s.deleted = 0 ORDER BY x.rid",
            [target_type, *ids, *keys],
        ).fetchall()
        out.extend(int(r[0]) for r in rows)
    return out
