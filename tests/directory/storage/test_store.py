"""Versioned storage and its search index, checked in the tables (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from timkit.core.db import Database, Migration
from timkit.core.errors import ConfigError
from timkit.directory.handlers import Directory
from timkit.directory.storage.migrations import MIGRATIONS
from timkit.directory.storage.store import Store, Stored
from timkit.directory.validation import validate

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "vzd" / "examples"
INDEX_TABLES = ("idx_token", "idx_string", "idx_ref", "idx_date", "idx_geo")


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
    return data


def _endpoint(resource_id: str, name: str, **changes: Any) -> dict[str, Any]:
    resource = _example("Endpoint-OrganizationExample001-Endpoint-TIM")
    return {**resource, "id": resource_id, "name": name, **changes}


def _save(directory: Directory, resource: dict[str, Any]) -> Stored:
    with directory.db.write() as tx:
        return directory.store.save(tx, validate(copy.deepcopy(resource)), method="PUT")


def _delete(directory: Directory, resource_type: str, resource_id: str) -> Stored | None:
    with directory.db.write() as tx:
        return directory.store.delete(tx, resource_type, resource_id)


def _ids(directory: Directory, resource_type: str, *pairs: tuple[str, str]) -> list[str]:
    _query, result = directory.search(resource_type, list(pairs), strict=True)
    return [s.id for s in result.matches]


def _fts_key(directory: Directory) -> str:
    return "rowid" if directory.db.dialect == "sqlite" else "rid"


def _index_rows(directory: Directory, rid: int) -> dict[str, int]:
    """Rows per index table (and full-text) held for ``rid``."""
    counts = {}
    with directory.db.read() as cur:
        for table in INDEX_TABLES:
            sql = f"SELECT COUNT(*) FROM {table} WHERE rid = ?"  # noqa: S608 - constant names
            row = cur.execute(sql, (rid,)).fetchone()
            counts[table] = int(row[0])
        key = _fts_key(directory)
        sql = f"SELECT COUNT(*) FROM fts WHERE {key} = ?"  # noqa: S608 - a constant column name
        row = cur.execute(sql, (rid,)).fetchone()
        counts["fts"] = int(row[0])
    return counts


def _snapshot(directory: Directory) -> dict[str, list[tuple[Any, ...]]]:
    """Everything in the directory's tables, for before/after comparisons."""
    queries = {
        "resources": "SELECT rid, type, id, version, last_updated, deleted FROM resources",
        "versions": "SELECT rid, version, last_updated, deleted, method, body FROM versions",
        **{table: f"SELECT * FROM {table}" for table in INDEX_TABLES},  # noqa: S608
    }
    if directory.db.dialect == "sqlite":
        queries["fts"] = "SELECT rowid, doc FROM fts"
    else:
        queries["fts"] = "SELECT rid, doc::text FROM fts"
    with directory.db.read() as cur:
        return {
            name: sorted(tuple(row) for row in cur.execute(sql).fetchall())
            for name, sql in queries.items()
        }


def test_every_version_is_stored_whole(directory: Directory) -> None:
    first = _endpoint("ep", "Erste")
    second = _endpoint("ep", "Zweite", address="matrix:u/zwei:tim.example.de")
    third = _endpoint("ep", "Dritte", status="off")
    stored = [_save(directory, r) for r in (first, second, third)]

    assert [s.version for s in stored] == [1, 2, 3]
    assert len({s.rid for s in stored}) == 1
    with directory.db.read() as cur:
        rows = cur.execute(
            "SELECT version, deleted, method, body FROM versions WHERE rid = ? ORDER BY version",
            (stored[0].rid,),
        ).fetchall()
        versions = [directory.store.version(cur, "Endpoint", "ep", n) for n in (1, 2, 3)]
        current = directory.store.current(cur, "Endpoint", "ep")
    assert [(int(v), int(d), m) for v, d, m, _ in rows] == [
        (1, 0, "PUT"),
        (2, 0, "PUT"),
        (3, 0, "PUT"),
    ]
    for (version, _deleted, _method, body), original in zip(
        rows, (first, second, third), strict=True
    ):
        parsed = json.loads(body)
        assert parsed["meta"]["versionId"] == str(version)
        meta = {k: v for k, v in parsed["meta"].items() if k not in ("versionId", "lastUpdated")}
        assert {**parsed, "meta": meta} == original
    assert [v.resource()["name"] if v else None for v in versions] == ["Erste", "Zweite", "Dritte"]
    assert current is not None
    assert (current.version, current.resource()["status"]) == (3, "off")


def test_delete_stores_a_tombstone_and_keeps_the_versions(directory: Directory) -> None:
    saved = _save(directory, _endpoint("ep", "Weg"))

    tombstone = _delete(directory, "Endpoint", "ep")

    assert tombstone is not None
    assert (tombstone.version, tombstone.deleted) == (2, True)
    with directory.db.read() as cur:
        resource_row = cur.execute(
            "SELECT version, deleted FROM resources WHERE rid = ?", (saved.rid,)
        ).fetchone()
        version_rows = cur.execute(
            "SELECT version, deleted, method, body FROM versions WHERE rid = ? ORDER BY version",
            (saved.rid,),
        ).fetchall()
        current = directory.store.current(cur, "Endpoint", "ep")
        history = directory.store.history(cur, "Endpoint", "ep")
    assert tuple(int(v) for v in resource_row) == (2, 1)
    assert [(int(v), int(d), m) for v, d, m, _ in version_rows] == [(1, 0, "PUT"), (2, 1, "DELETE")]
    assert json.loads(version_rows[0][3])["name"] == "Weg"
    body = json.loads(version_rows[1][3])
    assert set(body) == {"resourceType", "id", "meta"}
    assert (body["resourceType"], body["id"], body["meta"]["versionId"]) == ("Endpoint", "ep", "2")
    assert current is not None
    assert current.deleted
    assert [(h.version, h.deleted) for h in history] == [(2, True), (1, False)]

    assert _delete(directory, "Endpoint", "ep") is None
    assert _delete(directory, "Endpoint", "never") is None
    with directory.db.read() as cur:
        assert len(directory.store.history(cur, "Endpoint", "ep")) == 2
        assert directory.store.current(cur, "Endpoint", "never") is None


def test_an_update_replaces_the_index_rows(directory: Directory) -> None:
    first = _save(directory, _endpoint("ep", "Alphaname", address="matrix:u/alpha:a.de"))
    rows_before = _index_rows(directory, first.rid)
    assert _ids(directory, "Endpoint", ("name", "alphaname")) == ["ep"]
    assert _ids(directory, "Endpoint", ("_text", "alphaname")) == ["ep"]

    _save(directory, _endpoint("ep", "Betaname", address="matrix:u/beta:b.de"))

    assert _index_rows(directory, first.rid) == rows_before
    assert _ids(directory, "Endpoint", ("name", "alphaname")) == []
    assert _ids(directory, "Endpoint", ("name:exact", "Alphaname")) == []
    assert _ids(directory, "Endpoint", ("address", "matrix:u/alpha")) == []
    assert _ids(directory, "Endpoint", ("_text", "alphaname")) == []
    assert _ids(directory, "Endpoint", ("name", "betaname")) == ["ep"]
    assert _ids(directory, "Endpoint", ("address", "matrix:u/beta")) == ["ep"]
    assert _ids(directory, "Endpoint", ("_text", "betaname")) == ["ep"]


def test_an_update_that_drops_a_value_drops_its_index_rows(directory: Directory) -> None:
    location = _example("Location-LocationExample")
    location["position"] = {"latitude": 52.52, "longitude": 13.40}
    saved = _save(directory, location)
    near = ("near", "52.52|13.40|5|km")
    assert _ids(directory, "Location", near) == ["LocationExample"]
    assert _ids(directory, "Location", ("organization", "OrganizationExample001")) == [
        "LocationExample"
    ]

    del location["position"], location["managingOrganization"]
    _save(directory, location)

    rows = _index_rows(directory, saved.rid)
    assert (rows["idx_geo"], rows["idx_ref"]) == (0, 0)
    assert _ids(directory, "Location", near) == []
    assert _ids(directory, "Location", ("organization", "OrganizationExample001")) == []
    assert _ids(directory, "Location", ("name", "praxis am rathaus")) == ["LocationExample"]


def test_delete_removes_the_index_rows(directory: Directory) -> None:
    location = _example("Location-LocationExample")
    location["position"] = {"latitude": 52.52, "longitude": 13.40}
    role = _example("PractitionerRole-PractitionerRoleExample")
    role["period"] = {"start": "2024-01-01"}
    saved = [_save(directory, location), _save(directory, role)]
    rows = [_index_rows(directory, s.rid) for s in saved]
    assert all(rows[0][t] or rows[1][t] for t in (*INDEX_TABLES, "fts")), rows
    assert _ids(directory, "PractitionerRole", ("date", "ge2024")) == ["PractitionerRoleExample"]

    _delete(directory, "Location", "LocationExample")
    _delete(directory, "PractitionerRole", "PractitionerRoleExample")

    empty = dict.fromkeys([*INDEX_TABLES, "fts"], 0)
    assert [_index_rows(directory, s.rid) for s in saved] == [empty, empty]
    assert _ids(directory, "Location", ("name", "praxis")) == []
    assert _ids(directory, "Location", ("_text", "rathaus")) == []
    assert _ids(directory, "Location", ("_id", "LocationExample")) == []
    assert _ids(directory, "PractitionerRole", ("date", "ge2024")) == []


def test_linked_text_follows_the_target(directory: Directory) -> None:
    organization = _example("Organization-OrganizationExample")
    organization["name"] = "Zahnarztpraxis Sonnenschein"
    _save(directory, organization)
    _save(directory, _example("HealthcareService-HealthcareServiceExample"))
    assert _ids(directory, "HealthcareService", ("_text", "sonnenschein")) == [
        "HealthcareServiceExample"
    ]

    organization["name"] = "Zahnarztpraxis Mondlicht"
    _save(directory, organization)
    assert _ids(directory, "HealthcareService", ("_text", "sonnenschein")) == []
    assert _ids(directory, "HealthcareService", ("_text", "mondlicht")) == [
        "HealthcareServiceExample"
    ]

    _delete(directory, "Organization", "OrganizationExample")
    assert _ids(directory, "HealthcareService", ("_text", "mondlicht")) == []
    assert _ids(directory, "HealthcareService", ("_text", "zahnmedizin")) == [
        "HealthcareServiceExample"
    ]


def test_an_error_inside_a_write_leaves_no_trace(directory: Directory) -> None:
    _save(directory, _endpoint("kept", "Bleibt"))
    _save(directory, _example("Location-LocationExample"))
    before = _snapshot(directory)
    store = directory.store

    def write_then_fail() -> None:
        with directory.db.write() as tx:
            store.save(tx, validate(_endpoint("new", "Neuling")), method="POST")
            store.save(tx, validate(_endpoint("kept", "Überschrieben")), method="PUT")
            store.delete(tx, "Location", "LocationExample")
            service = validate(_example("HealthcareService-HealthcareServiceExample"))
            store.save(tx, service, method="PUT")
            raise RuntimeError("mittendrin")

    with pytest.raises(RuntimeError, match="mittendrin"):
        write_then_fail()

    assert _snapshot(directory) == before
    assert _ids(directory, "Endpoint", ("name", "bleibt")) == ["kept"]
    assert _ids(directory, "Endpoint", ("_text", "neuling")) == []
    assert _ids(directory, "Location", ("_text", "rathaus")) == ["LocationExample"]
    with directory.db.read() as cur:
        assert store.current(cur, "Endpoint", "new") is None
        kept = store.current(cur, "Endpoint", "kept")
    assert kept is not None
    assert kept.version == 1
    # the writer is usable again afterwards
    assert _save(directory, _endpoint("new", "Neuling")).version == 1


def test_migrations_are_numbered_and_applied_once(directory: Directory) -> None:
    _save(directory, _endpoint("ep", "Vorhanden"))
    again = Database.open(directory.db.url)
    try:
        reopened = Directory(Store(again))
        assert again.migrate("directory", MIGRATIONS) == []
        with again.read() as cur:
            rows = cur.execute(
                "SELECT number, name FROM schema_migrations WHERE component = ? ORDER BY number",
                ("directory",),
            ).fetchall()
        assert [(int(n), name) for n, name in rows] == [(m.number, m.name) for m in MIGRATIONS]
        assert [m.number for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
        assert _ids(reopened, "Endpoint", ("name", "vorhanden")) == ["ep"]
        with pytest.raises(ConfigError, match="numbered"):
            again.migrate("gaps", [Migration(2, "two", {"sqlite": "", "postgresql": ""})])
    finally:
        again.close()
