"""The domain store and federation list storage on SQLite and PostgreSQL (``proxy_db_url``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from timkit.core.db import Database
from timkit.core.errors import TimkitError
from timkit.core.signers import Signer
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.handlers.signed_list import (
    Domain,
    Federation,
    SigAlg,
    current_list,
    load_list_signers,
)
from timkit.fhirproxy.service import open_database
from timkit.fhirproxy.storage.domains import DomainStore


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> dict[SigAlg, Signer]:
    """Both list signers, issued by a local PKI."""
    return load_list_signers(FhirProxyConfig(pki_dir=tmp_path_factory.mktemp("pki")))


@pytest.fixture
def db(proxy_db_url: str) -> Iterator[Database]:
    """The proxy database on each engine."""
    database = open_database(proxy_db_url)
    yield database
    database.close()


def test_domain_round_trip(db: Database) -> None:
    store = DomainStore(db)
    kk = Domain("kk.example.de", "8-01", True, ("108433248",), "provider-a", ("r.example.de",))
    with db.write() as tx:
        DomainStore.insert(tx, kk)
        DomainStore.insert(tx, Domain("a.example.de", "1-x", tim_anbieter="provider-b"))
    assert store.get("KK.example.de") == kk
    assert store.contains("Kk.Example.de")
    assert store.provider_has_telematik_id("provider-a", "8-01")
    assert not store.provider_has_telematik_id("provider-b", "8-01")
    assert [d.domain for d in store.of_provider("provider-b")] == ["a.example.de"]
    assert [d.domain for d in store.all()] == ["a.example.de", "kk.example.de"]
    changed = Domain("kk.example.de", "8-02", True, ("104127692",), "provider-a")
    with db.write() as tx:
        DomainStore.update(tx, changed)
        assert DomainStore.ik_holders(tx, ["108433248", "104127692"]) == {
            "104127692": "kk.example.de"
        }
    assert store.get("kk.example.de") == changed
    with db.write() as tx:
        assert DomainStore.delete(tx, "kk.example.de")
        assert not DomainStore.delete(tx, "kk.example.de")
        assert DomainStore.ik_holders(tx, ["104127692"]) == {}


def test_af_10048_ik_is_unique_in_the_database(db: Database) -> None:
    with db.write() as tx:
        DomainStore.insert(tx, Domain("a.example.de", "1", True, ("108433248",), "p"))
    with pytest.raises(Exception), db.write() as tx:  # noqa: B017, PT011 - engine-specific
        DomainStore.insert(tx, Domain("b.example.de", "2", True, ("108433248",), "p"))
    assert not DomainStore(db).contains("b.example.de")


def test_ml_123677_versions_and_isolation_on_each_engine(
    db: Database, signers: dict[SigAlg, Signer]
) -> None:
    federation = Federation(db, signers)
    assert federation.latest().version == 1  # the first, empty list
    federation.add(Domain("a.example.de", "1-x", tim_anbieter="provider-a"))
    with pytest.raises(TimkitError) as caught:
        federation.remove("a.example.de", "provider-b")
    assert caught.value.status == 403
    assert federation.remove("a.example.de", "provider-a").version == 3
    with db.read() as cur:
        payload = cur.execute("SELECT payload FROM federation_lists WHERE version = 3").fetchone()
    assert bytes(payload[0]) == federation.latest().payload  # kept byte for byte


def test_ml_123677_concurrent_instances_never_share_a_version(
    proxy_db_url: str, signers: dict[SigAlg, Signer]
) -> None:
    databases = [open_database(proxy_db_url) for _ in range(2)]
    try:
        instances = [Federation(d, signers) for d in databases]
        errors: list[BaseException] = []

        def register(index: int) -> None:
            try:
                for n in range(5):
                    domain = Domain(f"d{n}.i{index}.example.de", "1-x", tim_anbieter="p")
                    instances[index].add(domain)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=register, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        latest = [f.latest() for f in instances]
        assert latest[0].version == latest[1].version == 10
        assert latest[0].jws() == latest[1].jws()
        assert len(current_list(databases[0]).entries) == 10
    finally:
        for database in databases:
            database.close()


def test_ml_123677_regeneration_of_100k_domains(
    db: Database, signers: dict[SigAlg, Signer], tmp_path: Path
) -> None:
    with db.write() as tx:
        tx.executemany(
            "INSERT INTO domains (domain, client_id, telematik_id, is_insurance, ik,"
            " redirect_domains, created, updated) VALUES (?, ?, ?, 0, '[]', '[]', '', '')",
            [
                (f"org-{i:06d}.tim.example.de", "provider-a", f"1-2.58.{i:08d}")
                for i in range(100_000)
            ],
        )
    # The time it takes is measured by `timkit bench directory-proxy`, not asserted here.
    stored = Federation(db, signers).regenerate()
    assert len(stored.parsed().entries) == 100_000
    assert stored.parsed().entries[0].domain == "org-000000.tim.example.de"
