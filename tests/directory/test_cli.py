"""``timkit directory generate|load`` as a user runs them (real processes, real database)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from timkit.directory.service import open_directory


def _timkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timkit", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=120,
    )


def test_generate_to_ndjson_then_load_it(tmp_path: Path) -> None:
    data = tmp_path / "synthetic.ndjson"
    generated = _timkit(
        "directory", "generate", "-o", "3", "-p", "4", "--output", str(data), cwd=tmp_path
    )
    assert "wrote 28 resources" in generated.stdout
    assert len(data.read_text().splitlines()) == 28

    database = f"sqlite:///{tmp_path / 'directory.db'}"
    loaded = _timkit("directory", "load", str(data), "--database", database, cwd=tmp_path)
    assert "loaded 28 resources" in loaded.stdout
    directory = open_directory(database)
    try:
        _, result = directory.search("PractitionerRole", [("_summary", "count")])
        assert result.total == 4
        _, services = directory.search("HealthcareService", [("organization.active", "true")])
        assert services.total is not None
        assert services.total >= 1
    finally:
        directory.db.close()


def test_generate_loads_into_the_local_federations_directory(tmp_path: Path) -> None:
    result = _timkit("directory", "generate", "-o", "2", "-p", "2", cwd=tmp_path)
    assert "loaded 16 resources" in result.stdout
    assert (tmp_path / "var" / "fhir-directory" / "directory.db").exists()


def test_loading_an_invalid_file_fails_naming_the_element(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"resourceType": "Endpoint", "id": "e1", "status": "active"}\n')
    database = f"sqlite:///{tmp_path / 'directory.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "timkit", "directory", "load", str(bad), "--database", database],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Endpoint." in result.stderr
    assert "ML-123880" in result.stderr
