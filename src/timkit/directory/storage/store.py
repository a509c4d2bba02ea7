"""Versioned resource storage with the search index written in the same transaction.

Every write (:meth:`Store.save`, :meth:`Store.delete`) runs on a cursor of an open write
transaction (:meth:`Database.write`), so a Bundle transaction is all-or-nothing. Per write:

1. the next version is stored whole in ``versions`` (a delete stores a tombstone);
2. ``resources`` points at it;
3. the index rows of the previous version are replaced by the new version's
   (:func:`index_resource`), including the full-text document;
4. full-text documents that embed this resource's text (HealthcareService and
   PractitionerRole pointing at it) are rebuilt, so linked-resource text never goes stale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from timkit.core.db import Cursor, Database
from timkit.directory.indexing import (
    LINKED_TEXT_TYPES,
    IndexRows,
    index_resource,
    text_document,
)
from timkit.directory.storage.migrations import MIGRATIONS

_INDEX_TABLES = ("idx_token", "idx_string", "idx_ref", "idx_date", "idx_geo")


@dataclass(frozen=True)
class Stored:
    """One stored version of a resource; ``body`` is its JSON text including ``meta``."""

    rid: int
    type: str
    id: str
    version: int
    last_updated: str
    deleted: bool
    body: str

    def resource(self) -> dict[str, Any]:
        """The parsed resource."""
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


def now() -> str:
    """The current instant as stored in ``meta.lastUpdated`` (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean earth radius 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12742.0 * math.asin(math.sqrt(min(1.0, a)))


_SELECT = (
    "SELECT r.rid, r.type, r.id, v.version, v.last_updated, v.deleted, v.body"
    " FROM resources r JOIN versions v ON v.rid = r.rid"
)


def _stored(row: Sequence[Any]) -> Stored:
    return Stored(int(row[0]), row[1], row[2], int(row[3]), row[4], bool(row[5]), row[6])


class Store:
    """The directory's storage on a :class:`Database` (schema migrated on construction)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.sqlite_function("tk_distance", 4, distance_km)
        db.migrate("directory", MIGRATIONS)
        self.dialect = db.dialect

    # -- reads ---------------------------------------------------------------------------

    def current(self, cur: Cursor, resource_type: str, resource_id: str) -> Stored | None:
        """The current version (possibly a tombstone), or ``None`` if never stored."""
        row = cur.execute(
            _SELECT + " AND v.version = r.version WHERE r.type = ? AND r.id = ?",
            (resource_type, resource_id),
        ).fetchone()
        return _stored(row) if row else None

    def version(
        self, cur: Cursor, resource_type: str, resource_id: str, version: int
    ) -> Stored | None:
        """One version, or ``None``."""
        row = cur.execute(
            _SELECT + " WHERE r.type = ? AND r.id = ? AND v.version = ?",
            (resource_type, resource_id, version),
        ).fetchone()
        return _stored(row) if row else None

    def history(self, cur: Cursor, resource_type: str, resource_id: str) -> list[Stored]:
        """All versions, newest first."""
        rows = cur.execute(
            _SELECT + " WHERE r.type = ? AND r.id = ? ORDER BY v.version DESC",
            (resource_type, resource_id),
        ).fetchall()
        return [_stored(r) for r in rows]

    def by_rids(self, cur: Cursor, rids: Sequence[int]) -> list[Stored]:
        """Current versions of ``rids``, in the given order (deleted ones left out)."""
        if not rids:
            return []
        marks = ",".join("?" * len(rids))
        rows = cur.execute(
            _SELECT + f" AND v.version = r.version WHERE r.rid IN ({marks}) AND r.deleted = 0",
            tuple(rids),
        ).fetchall()
        found = {int(r[0]): _stored(r) for r in rows}
        return [found[rid] for rid in rids if rid in found]

    # -- writes --------------------------------------------------------------------------

    def save(
        self,
        tx: Cursor,
        resource: dict[str, Any],
        *,
        method: str,
        rows: IndexRows | None = None,
    ) -> Stored:
        """Store ``resource`` (with ``resourceType`` and ``id``) as its next version.

        Sets ``meta.versionId`` and ``meta.lastUpdated`` on ``resource``. ``rows`` may carry
        the resource's index rows computed beforehand (bulk loads compute them in worker
        processes); they do not depend on ``meta.versionId``/``lastUpdated``.
        """
        rows = rows if rows is not None else index_resource(resource)
        stored = self.save_many(tx, [(resource, rows)], method=method)
        return stored[0]

    def save_many(
        self,
        tx: Cursor,
        items: Sequence[tuple[dict[str, Any], IndexRows]],
        *,
        method: str,
        skip_unchanged: bool = False,
    ) -> list[Stored]:
        """:meth:`save` for many resources with their index rows, batching the SQL.

        With ``skip_unchanged``, a resource equal to its current version (apart from
        ``meta.versionId``/``lastUpdated``) is not stored again and not returned.
        """
        seen: set[tuple[str, str]] = set()
        for index, (resource, _rows) in enumerate(items):
            key = (resource["resourceType"], resource["id"])
            if key in seen:  # the same resource again: store the earlier entries first
                first = self.save_many(
                    tx, items[:index], method=method, skip_unchanged=skip_unchanged
                )
                rest = self.save_many(
                    tx, items[index:], method=method, skip_unchanged=skip_unchanged
                )
                return first + rest
            seen.add(key)
        saved: list[tuple[Stored, IndexRows]] = []
        texts: dict[tuple[str, str], str] = {}
        for resource, rows in items:
            resource_type, resource_id = resource["resourceType"], resource["id"]
            previous = tx.execute(
                "SELECT rid, version, deleted FROM resources WHERE type = ? AND id = ?",
                (resource_type, resource_id),
            ).fetchone()
            if previous and skip_unchanged and not previous[2]:
                current = self.current(tx, resource_type, resource_id)
                if current is not None and _same(current.resource(), resource):
                    continue
            version = int(previous[1]) + 1 if previous else 1
            updated = now()
            resource["meta"] = {
                **resource.get("meta", {}),
                "versionId": str(version),
                "lastUpdated": updated,
            }
            body = orjson.dumps(resource).decode()
            rid = self._point(tx, previous, resource_type, resource_id, version, updated, deleted=0)
            tx.execute(
                "INSERT INTO versions (rid, version, last_updated, deleted, method, body)"
                " VALUES (?, ?, ?, 0, ?, ?)",
                (rid, version, updated, method, body),
            )
            if previous:
                self._unindex(tx, rid)
            texts[(resource_type, resource_id)] = rows.text
            saved.append(
                (Stored(rid, resource_type, resource_id, version, updated, False, body), rows)
            )
        self._index_many(tx, saved)
        created = [(s.rid, s.type, s.id) for s, _ in saved if s.version == 1]
        if created:
            tx.executemany(
                "UPDATE idx_ref SET trid = ? WHERE ttype = ? AND tid = ? AND trid IS NULL", created
            )
        self._write_texts(tx, saved, texts)
        self._refresh_referrers(
            tx, [(s.type, s.id) for s, _ in saved], skip={s.rid for s, _ in saved}
        )
        return [s for s, _ in saved]

    def delete(self, tx: Cursor, resource_type: str, resource_id: str) -> Stored | None:
        """Store a tombstone version; ``None`` if there is nothing live to delete."""
        previous = tx.execute(
            "SELECT rid, version, deleted FROM resources WHERE type = ? AND id = ?",
            (resource_type, resource_id),
        ).fetchone()
        if previous is None or previous[2]:
            return None
        version = int(previous[1]) + 1
        updated = now()
        tombstone = {
            "resourceType": resource_type,
            "id": resource_id,
            "meta": {"versionId": str(version), "lastUpdated": updated},
        }
        body = orjson.dumps(tombstone).decode()
        rid = self._point(tx, previous, resource_type, resource_id, version, updated, deleted=1)
        tx.execute(
            "INSERT INTO versions (rid, version, last_updated, deleted, method, body)"
            " VALUES (?, ?, ?, 1, 'DELETE', ?)",
            (rid, version, updated, body),
        )
        self._unindex(tx, rid)
        self._refresh_referrers(tx, [(resource_type, resource_id)])
        return Stored(rid, resource_type, resource_id, version, updated, True, body)

    def _point(
        self,
        tx: Cursor,
        previous: Sequence[Any] | None,
        resource_type: str,
        resource_id: str,
        version: int,
        updated: str,
        *,
        deleted: int,
    ) -> int:
        if previous:
            tx.execute(
                "UPDATE resources SET version = ?, last_updated = ?, deleted = ? WHERE rid = ?",
                (version, updated, deleted, previous[0]),
            )
            return int(previous[0])
        row = tx.execute(
            "INSERT INTO resources (type, id, version, last_updated, deleted)"
            " VALUES (?, ?, ?, ?, ?) RETURNING rid",
            (resource_type, resource_id, version, updated, deleted),
        ).fetchone()
        return int(row[0])

    def _unindex(self, tx: Cursor, rid: int) -> None:
        for table in _INDEX_TABLES:
            tx.execute(f"DELETE FROM {table} WHERE rid = ?", (rid,))
        if self.dialect == "sqlite":
            tx.execute("DELETE FROM fts WHERE rowid = ?", (rid,))
        else:
            tx.execute("DELETE FROM fts WHERE rid = ?", (rid,))

    def _index_many(self, tx: Cursor, saved: Sequence[tuple[Stored, IndexRows]]) -> None:
        """Insert the index rows (deduplicated: the tables are keyed by ``rid`` first)."""
        tokens = dict.fromkeys(
            (s.rid, k, c, y, t) for s, rows in saved for k, y, c, t in rows.tokens
        )
        strings = dict.fromkeys((s.rid, *v) for s, rows in saved for v in rows.strings)
        refs = dict.fromkeys((s.rid, *r) for s, rows in saved for r in rows.references)
        dates = dict.fromkeys((s.rid, *d) for s, rows in saved for d in rows.dates)
        positions = [(s.rid, *rows.position) for s, rows in saved if rows.position]
        for sql, values in (
            (
                "INSERT INTO idx_token (rid, key, code, system, text) VALUES (?, ?, ?, ?, ?)",
                list(tokens),
            ),
            ("INSERT INTO idx_string (rid, key, norm, exact) VALUES (?, ?, ?, ?)", list(strings)),
            (
                "INSERT INTO idx_ref (rid, key, ttype, tid, trid) VALUES (?, ?, ?, ?,"
                " (SELECT rid FROM resources WHERE type = ? AND id = ?))",
                [(*r, r[2], r[3]) for r in refs],
            ),
            ("INSERT INTO idx_date (rid, key, low, high) VALUES (?, ?, ?, ?)", list(dates)),
            ("INSERT INTO idx_geo (rid, lat, lon) VALUES (?, ?, ?)", positions),
        ):
            if values:
                tx.executemany(sql, values)

    def _write_texts(
        self,
        tx: Cursor,
        saved: Sequence[tuple[Stored, IndexRows]],
        known: dict[tuple[str, str], str],
    ) -> None:
        """Full-text documents; ``known`` holds own texts of resources in this batch."""
        documents = []
        for stored, rows in saved:
            text = rows.text
            if stored.type in LINKED_TEXT_TYPES:
                targets = sorted({(t, i) for _key, t, i in rows.references})
                text = " ".join([text, *self._texts(tx, targets, known)])
            documents.append((stored.rid, text))
        if not documents:
            return
        if self.dialect == "sqlite":
            tx.executemany("INSERT INTO fts (rowid, doc) VALUES (?, ?)", documents)
        else:
            tx.executemany(
                "INSERT INTO fts (rid, doc) VALUES (?, to_tsvector('simple', ?))", documents
            )

    def _texts(
        self,
        tx: Cursor,
        targets: Iterable[tuple[str, str]],
        known: dict[tuple[str, str], str],
    ) -> list[str]:
        texts: list[str] = []
        for target in targets:
            if target in known:
                texts.append(known[target])
                continue
            row = tx.execute(
                "SELECT v.body FROM resources r JOIN versions v"
                " ON v.rid = r.rid AND v.version = r.version"
                " WHERE r.type = ? AND r.id = ? AND r.deleted = 0",
                target,
            ).fetchone()
            if row:
                texts.append(text_document(orjson.loads(row[0])))
        return texts

    def _refresh_referrers(
        self, tx: Cursor, targets: Sequence[tuple[str, str]], *, skip: set[int] | None = None
    ) -> None:
        """Rebuild the documents that embed the text of ``targets`` (except ``skip``)."""
        if not targets:
            return
        referrers: set[int] = set()
        linked = sorted(LINKED_TEXT_TYPES)
        for target in targets:
            rows = tx.execute(
                "SELECT x.rid FROM idx_ref x JOIN resources r ON r.rid = x.rid"
                " WHERE x.ttype = ? AND x.tid = ? AND r.type IN (?, ?)",
                (*target, *linked),
            ).fetchall()
            referrers.update(int(r[0]) for r in rows)
        referrers -= skip or set()
        if not referrers:
            return
        stale = [
            (stored, index_resource(stored.resource()))
            for stored in self.by_rids(tx, sorted(referrers))
        ]
        column = "rowid" if self.dialect == "sqlite" else "rid"
        tx.executemany(f"DELETE FROM fts WHERE {column} = ?", [(s.rid,) for s, _ in stale])
        self._write_texts(tx, stale, {})


def _same(stored: dict[str, Any], resource: dict[str, Any]) -> bool:
    """Equal apart from ``meta.versionId``/``meta.lastUpdated``."""

    def strip(r: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in r.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
        return {**r, "meta": meta}

    return strip(stored) == strip(resource)
