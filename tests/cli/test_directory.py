"""``timkit directory generate|load|provider|audit|domains`` as a user and an operator run
them (real processes, real databases)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from timkit.core.tls import LocalPKI
from timkit.directory.service import open_directory
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.handlers.signed_list import Federation
from timkit.fhirproxy.service import open_database
from timkit.fhirproxy.storage.audit import AuditLog
from timkit.fhirproxy.storage.domains import Domain
from timkit.fhirproxy.storage.providers import ProviderStore


def _timkit(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timkit", *args],
        capture_output=True,
        text=True,
        check=check,
        cwd=cwd,
        timeout=120,
    )


def test_ml_123881_provider_add_list_and_cert(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'proxy.db'}"
    pki = LocalPKI(tmp_path / "pki")
    first = pki.ensure_signing_cert("regservice-1", "RegService 1").cert
    second = pki.ensure_signing_cert("regservice-2", "RegService 2").cert
    added = _timkit(
        "directory", "provider", "add", "acme", "--name", "ACME TI-M", "--cert", str(first),
        "--proxy-database", database, cwd=tmp_path,
    )  # fmt: skip
    printed = json.loads(added.stdout)
    assert printed["client_id"] == "acme"
    assert len(printed["client_secret"]) >= 32
    assert len(printed["certificates"]) == 1

    cert = _timkit(
        "directory", "provider", "cert", "acme", str(second), "--proxy-database", database,
        cwd=tmp_path,
    )  # fmt: skip
    assert len(json.loads(cert.stdout)["fingerprint"]) == 64
    listed = _timkit(
        "directory", "provider", "list", "--json", "--proxy-database", database, cwd=tmp_path
    )
    assert [p["client_id"] for p in json.loads(listed.stdout)] == ["acme"]

    db = open_database(database)
    try:
        store = ProviderStore(db)
        assert store.authenticate("acme", printed["client_secret"]) is not None
        for path in (first, second):
            provider = store.by_certificate(x509.load_pem_x509_certificate(path.read_bytes()))
            assert provider is not None
            assert provider.client_id == "acme"
    finally:
        db.close()

    again = _timkit(
        "directory", "provider", "add", "acme", "--name", "x", "--proxy-database", database,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert "exists" in again.stderr
    bad_cert = tmp_path / "bad.pem"
    bad_cert.write_text("not a certificate")
    rejected = _timkit(
        "directory", "provider", "add", "other", "--name", "x", "--cert", str(bad_cert),
        "--proxy-database", database, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert rejected.returncode == 1
    assert "PEM" in rejected.stderr
    listed = _timkit("directory", "provider", "list", "--proxy-database", database, cwd=tmp_path)
    assert "other" not in listed.stdout  # nothing registered when a certificate is bad


def test_provider_add_uses_the_local_federations_proxy_database(tmp_path: Path) -> None:
    added = _timkit(
        "directory", "provider", "add", "demo", "--name", "Demo", "--secret", "s3", cwd=tmp_path
    )
    assert json.loads(added.stdout)["client_secret"] == "s3"
    listed = _timkit("directory", "provider", "list", cwd=tmp_path)
    assert listed.stdout.split()[0] == "demo"
    assert list(tmp_path.glob("var/**/fhir-proxy.db"))


def test_audit_filters(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'proxy.db'}"
    db = open_database(database)
    try:
        audit = AuditLog(db)
        audit.record("provider:a", "POST /tim-provider-services/federation", "a.example.de", 200)
        audit.record(
            "provider:b",
            "DELETE /tim-provider-services/federation/b.example.de",
            "b.example.de",
            403,
        )
    finally:
        db.close()

    def query(*args: str) -> list[dict[str, object]]:
        result = _timkit(
            "directory", "audit", "--json", *args, "--proxy-database", database, cwd=tmp_path
        )
        entries: list[dict[str, object]] = json.loads(result.stdout)
        return entries

    assert [e["actor"] for e in query()] == ["provider:b", "provider:a"]
    assert [e["status"] for e in query("--actor", "provider:a")] == [200]
    assert [e["actor"] for e in query("--target", "b.example")] == ["provider:b"]
    assert query("--since", "2999-01-01") == []
    assert len(query("--since", "2000-01-01T00:00:00+02:00", "--limit", "1")) == 1
    text = _timkit("directory", "audit", "--proxy-database", database, cwd=tmp_path)
    assert "provider:b" in text.stdout
    assert "403" in text.stdout
    bad = _timkit(
        "directory",
        "audit",
        "--since",
        "yesterday",
        "--proxy-database",
        database,
        cwd=tmp_path,
        check=False,
    )
    assert bad.returncode == 1


def test_ml_123677_domains_shows_the_current_list(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'proxy.db'}"
    empty = _timkit("directory", "domains", "--json", "--proxy-database", database, cwd=tmp_path)
    assert json.loads(empty.stdout) == {"version": 0, "domainList": []}
    db = open_database(database)
    try:
        federation = Federation.open(FhirProxyConfig(pki_dir=tmp_path / "pki"), db)
        federation.add(Domain("b.example.de", "1-b", tim_anbieter="provider-b"))
        federation.add(Domain("a.example.de", "8-a", True, ("108433248",), "provider-a"))
    finally:
        db.close()
    shown = json.loads(
        _timkit("directory", "domains", "--json", "--proxy-database", database, cwd=tmp_path).stdout
    )
    assert shown["version"] == 2
    assert [d["domain"] for d in shown["domainList"]] == ["a.example.de", "b.example.de"]
    assert shown["domainList"][0]["ik"] == ["108433248"]
    text = _timkit("directory", "domains", "--proxy-database", database, cwd=tmp_path).stdout
    assert text.startswith("federation list version 2: 2 domains")
    assert "108433248" in text


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
