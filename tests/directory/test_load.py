"""Bulk loading of Bundle, resource and NDJSON files (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import PostgresServer
from timkit.core.errors import TimkitError
from timkit.core.fhir import RESOURCE_TYPES
from timkit.directory.handlers import Directory
from timkit.directory.load import load, load_files, read_resources
from timkit.directory.service import open_directory

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "vzd" / "examples"
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("*.json") if not p.name.startswith("Bundle-"))
INDEX_TABLES = ("idx_token", "idx_string", "idx_ref", "idx_date", "idx_geo")


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
    return data


def _endpoint(resource_id: str, **changes: Any) -> dict[str, Any]:
    resource = _example("Endpoint-OrganizationExample001-Endpoint-TIM")
    return {**resource, "id": resource_id, "name": f"Endpoint {resource_id}", **changes}


def _invalid(resource_id: str) -> dict[str, Any]:
    resource = _endpoint(resource_id)
    del resource["name"]
    return resource


@pytest.fixture
def other(
    directory: Directory, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Directory]:
    """A second empty directory on the same kind of database as ``directory``."""
    if directory.db.dialect == "sqlite":
        url = f"sqlite:///{tmp_path}/other.db"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database(f"directory_other_{uuid.uuid4().hex}")
    opened = open_directory(url)
    yield opened
    opened.db.close()


def _versions(directory: Directory) -> list[tuple[str, str, int, str]]:
    """``(type, id, version, lastUpdated)`` of every stored version."""
    with directory.db.read() as cur:
        rows = cur.execute(
            "SELECT r.type, r.id, v.version, v.last_updated FROM resources r"
            " JOIN versions v ON v.rid = r.rid"
        ).fetchall()
    return sorted((t, i, int(v), u) for t, i, v, u in rows)


def _ids(directory: Directory, resource_type: str, *pairs: tuple[str, str]) -> list[str]:
    _query, result = directory.search(resource_type, [*pairs, ("_count", "1000")], strict=True)
    return sorted(s.id for s in result.matches)


def _contents(directory: Directory) -> dict[str, Any]:
    """The stored resources (without lastUpdated) and their index rows, keyed by (type, id)."""
    fts = (
        "SELECT rowid, doc FROM fts"
        if directory.db.dialect == "sqlite"
        else "SELECT rid, doc::text FROM fts"
    )
    with directory.db.read() as cur:
        names = {
            int(rid): (t, i)
            for rid, t, i in cur.execute("SELECT rid, type, id FROM resources").fetchall()
        }
        bodies = []
        for rid, version, body in cur.execute("SELECT rid, version, body FROM versions").fetchall():
            resource = json.loads(body)
            del resource["meta"]["lastUpdated"]
            bodies.append((names[int(rid)], int(version), resource))
        contents: dict[str, Any] = {"versions": sorted(bodies, key=repr)}
        for table in INDEX_TABLES:
            # every index table has the row id first; idx_ref's target row id (trid) last
            sql = f"SELECT * FROM {table}"  # noqa: S608 - a constant table name
            rows = [tuple(r) for r in cur.execute(sql).fetchall()]
            if table == "idx_ref":
                rows = [
                    (*r[:-1], names.get(int(r[-1])) if r[-1] is not None else None) for r in rows
                ]
            split = [(r[0], r[1:]) for r in rows]
            contents[table] = sorted((names[int(rid)], values) for rid, values in split)
        contents["fts"] = sorted((names[int(rid)], doc) for rid, doc in cur.execute(fts).fetchall())
    return contents


def test_load_files_loads_every_example(directory: Directory) -> None:
    stats = load_files(directory, [EXAMPLES])

    # 18 resource files plus the two entries of the searchset Bundle (copies of two of them)
    assert stats.resources == 20
    expected = sorted(
        (r["resourceType"], r["id"]) for r in (json.loads(p.read_text()) for p in EXAMPLE_FILES)
    )
    assert [(t, i, v) for t, i, v, _ in _versions(directory)] == [(t, i, 1) for t, i in expected]
    for resource_type in RESOURCE_TYPES:
        assert _ids(directory, resource_type) == sorted(
            i for t, i in expected if t == resource_type
        )
    assert _ids(directory, "Endpoint", ("name", "SystemsEngineering")) == [
        "OrganizationExample001-Endpoint-TIM"
    ]


def test_reloading_unchanged_data_creates_no_new_versions(directory: Directory) -> None:
    load_files(directory, [EXAMPLES])
    before = _versions(directory)

    load_files(directory, [EXAMPLES])
    load_files(directory, [EXAMPLES / "Bundle-FilteredSearchSetBundle.json"])

    assert _versions(directory) == before


def test_reloading_changes_only_the_changed_resource(directory: Directory, tmp_path: Path) -> None:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    load_files(directory, [copy])
    changed = _example("Location-LocationExample")
    changed["name"] = "Praxis am Markt"
    (copy / "Location-LocationExample.json").write_text(json.dumps(changed))

    load_files(directory, [copy])

    newer = [(t, i) for t, i, v, _ in _versions(directory) if v > 1]
    assert newer == [("Location", "LocationExample")]
    assert _ids(directory, "Location", ("name", "praxis am markt")) == ["LocationExample"]
    assert _ids(directory, "Location", ("name", "praxis am rathaus")) == []


def test_load_a_bundle_file(directory: Directory, tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": _endpoint("b1")},
            {"fullUrl": "urn:uuid:2", "resource": _example("Organization-OrganizationExample001")},
            {"fullUrl": "urn:uuid:3"},
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))

    stats = load_files(directory, [path])

    assert stats.resources == 2
    assert _ids(directory, "Endpoint") == ["b1"]
    assert _ids(directory, "Organization", ("identifier", "9-2.58.00000040")) == [
        "OrganizationExample001"
    ]


def test_load_an_ndjson_file(directory: Directory, tmp_path: Path) -> None:
    without_id = _endpoint("x", name="Ohne Kennung")
    del without_id["id"]
    lines = [json.dumps(_endpoint("n1")), "", json.dumps(_endpoint("n2")), json.dumps(without_id)]
    path = tmp_path / "data.ndjson"
    path.write_text("\n".join(lines) + "\n")
    sizes: list[int] = []

    stats = load_files(directory, [path], progress=sizes.append)

    assert stats.resources == 3
    assert sum(sizes) == 3
    ids = _ids(directory, "Endpoint")
    assert len(ids) == 3
    assert {"n1", "n2"} < set(ids)
    (assigned,) = _ids(directory, "Endpoint", ("name", "ohne kennung"))
    assert uuid.UUID(assigned)


def test_an_invalid_resource_refuses_its_whole_batch(directory: Directory) -> None:
    resources = [_endpoint("a1"), _endpoint("a2"), _endpoint("b1"), _invalid("b2"), _endpoint("c1")]

    with pytest.raises(TimkitError) as caught:
        load(directory, resources, batch_size=2, workers=0)

    error = caught.value
    assert error.status == 422
    assert error.extra["expression"] == ["Endpoint.name"]
    assert "resource #4" in error.message
    assert error.requirement == "ML-123880"
    assert _ids(directory, "Endpoint") == ["a1", "a2"]


def test_a_file_that_is_not_json_names_its_line(directory: Directory, tmp_path: Path) -> None:
    path = tmp_path / "broken.ndjson"
    path.write_text(json.dumps(_endpoint("ok")) + "\n{kaputt\n")

    with pytest.raises(TimkitError, match=r"broken\.ndjson:2"):
        load_files(directory, [path])
    with pytest.raises(TimkitError, match="no such file"):
        load_files(directory, [tmp_path / "missing.json"])


def test_worker_processes_give_the_same_result_as_inline(
    directory: Directory, other: Directory
) -> None:
    inline = load_files(directory, [EXAMPLES], workers=0)
    pooled = load(other, read_resources([EXAMPLES]), workers=2, batch_size=3)

    assert inline.resources == pooled.resources == 20
    assert _contents(other) == _contents(directory)
    assert _ids(other, "HealthcareService", ("_text", "zahnmedizin")) == _ids(
        directory, "HealthcareService", ("_text", "zahnmedizin")
    )


def test_worker_processes_refuse_a_batch_with_an_invalid_resource(directory: Directory) -> None:
    resources = [_endpoint(f"w{i}") for i in range(6)]
    resources[4] = _invalid("w4")

    with pytest.raises(TimkitError) as caught:
        load(directory, resources, batch_size=3, workers=2)

    assert caught.value.status == 422
    assert caught.value.extra["expression"] == ["Endpoint.name"]
    assert "resource #5" in caught.value.message
    assert _ids(directory, "Endpoint") == ["w0", "w1", "w2"]


def test_the_same_resource_twice_in_one_batch_is_stored_as_two_versions(
    directory: Directory,
) -> None:
    first = json.loads((EXAMPLES / "Endpoint-PharmacyEndpointTIMExample.json").read_text())
    second = {**first, "name": "Renamed endpoint"}
    load(directory, [first, second], workers=0)
    stored = directory.read("Endpoint", first["id"])
    assert stored.version == 2
    assert stored.resource()["name"] == "Renamed endpoint"
