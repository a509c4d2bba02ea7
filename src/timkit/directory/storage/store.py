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
        resource_type, resource_id = resource["resourceType"], resource["id"]
        previous = tx.execute(
            "SELECT rid, version FROM resources WHERE type = ? AND id = ?",
            (resource_type, resource_id),
        ).fetchone()
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
        rows = rows if rows is not None else index_resource(resource)
        self._index(tx, rid, rows)
        self._write_text(tx, rid, resource_type, rows)
        self._refresh_referrers(tx, resource_type, resource_id)
        return Stored(rid, resource_type, resource_id, version, updated, False, body)

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
        self._refresh_referrers(tx, resource_type, resource_id)
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

    def _index(self, tx: Cursor, rid: int, rows: IndexRows) -> None:
        if rows.tokens:
            tx.executemany(
                "INSERT INTO idx_token (key, system, code, text, rid) VALUES (?, ?, ?, ?, ?)",
                [(*t, rid) for t in rows.tokens],
            )
        if rows.strings:
            tx.executemany(
                "INSERT INTO idx_string (key, norm, exact, rid) VALUES (?, ?, ?, ?)",
                [(*s, rid) for s in rows.strings],
            )
        if rows.references:
            tx.executemany(
                "INSERT INTO idx_ref (key, ttype, tid, rid) VALUES (?, ?, ?, ?)",
                [(*r, rid) for r in rows.references],
            )
        if rows.dates:
            tx.executemany(
                "INSERT INTO idx_date (key, low, high, rid) VALUES (?, ?, ?, ?)",
                [(*d, rid) for d in rows.dates],
            )
        if rows.position:
            tx.execute(
                "INSERT INTO idx_geo (rid, lat, lon) VALUES (?, ?, ?)", (rid, *rows.position)
            )

    def _write_text(self, tx: Cursor, rid: int, resource_type: str, rows: IndexRows) -> None:
        text = rows.text
        if resource_type in LINKED_TEXT_TYPES:
            targets = {(t, i) for _key, t, i in rows.references}
            text = " ".join([text, *self._texts(tx, targets)])
        if self.dialect == "sqlite":
            tx.execute("INSERT INTO fts (rowid, doc) VALUES (?, ?)", (rid, text))
        else:
            tx.execute(
                "INSERT INTO fts (rid, doc) VALUES (?, to_tsvector('simple', ?))", (rid, text)
            )

    def _texts(self, tx: Cursor, targets: Iterable[tuple[str, str]]) -> list[str]:
        texts: list[str] = []
        for target_type, target_id in sorted(targets):
            row = tx.execute(
                "SELECT v.body FROM resources r JOIN versions v"
                " ON v.rid = r.rid AND v.version = r.version"
                " WHERE r.type = ? AND r.id = ? AND r.deleted = 0",
                (target_type, target_id),
            ).fetchone()
            if row:
                texts.append(text_document(orjson.loads(row[0])))
        return texts

    def _refresh_referrers(self, tx: Cursor, resource_type: str, resource_id: str) -> None:
        referrers = tx.execute(
            "SELECT DISTINCT x.rid FROM idx_ref x JOIN resources r ON r.rid = x.rid"
            " WHERE x.ttype = ? AND x.tid = ? AND r.type IN (?, ?)",
            (resource_type, resource_id, *sorted(LINKED_TEXT_TYPES)),
        ).fetchall()
        for (rid,) in referrers:
            (stored,) = self.by_rids(tx, [int(rid)])
            resource = stored.resource()
            rows = index_resource(resource)
            if self.dialect == "sqlite":
                tx.execute("DELETE FROM fts WHERE rowid = ?", (rid,))
            else:
                tx.execute("DELETE FROM fts WHERE rid = ?", (rid,))
            self._write_text(tx, int(rid), stored.type, rows)
