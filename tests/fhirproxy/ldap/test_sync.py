"""AF_10047: base entries synchronised from a real OpenLDAP server (and from a seed file)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.fhirproxy.conftest import Stack, start_stack
from tests.fhirproxy.ldap.test_mapping import ENTRIES, certificate_der, samples
from tests.support.slapd import SlapdServer
from tests.support.wait import async_wait_until
from timkit.core.fhir import ORIGIN
from timkit.fhirproxy import upstream
from timkit.fhirproxy.config import LdapConfig
from timkit.fhirproxy.ldap import sync as ldapsync
from timkit.fhirproxy.ldap.mapping import LdapEntry, map_entry
from timkit.fhirproxy.ldap.sync import ACTOR, LdapSync, RunSummary
from timkit.fhirproxy.service import open_database
from timkit.fhirproxy.storage.ldapstate import LdapSyncStore, SyncState, Written

T = TypeVar("T")

ORG = "Organization/ldap-org-10-67.245.91000001"
HS = "HealthcareService/ldap-hs-10-67.245.91000001"
ORG2 = "Organization/ldap-org-10-67.246.91000002"
PRACT = "Practitioner/ldap-pract-10-67.235.91000003"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Directory + proxy without LDAP configured (tests drive :class:`LdapSync` directly)."""
    async for running in start_stack(tmp_path):
        yield running


def _ldap_attributes(entry: dict[str, Any]) -> dict[str, Any]:
    attributes = {k: v for k, v in entry.items() if k != "userCertificate"}
    attributes["uid"] = entry["telematikID"]
    if "userCertificate" in entry:
        attributes["userCertificate;binary"] = entry["userCertificate"]
    return attributes


def _dn(subtree: str, telematik_id: str) -> str:
    return f"uid={telematik_id},{subtree}"


def populate(slapd: SlapdServer) -> str:
    """A fresh subtree with the three test entries (the SMC-B one with a certificate)."""
    subtree = slapd.subtree("vzd")
    connection = slapd.connect()
    for index, entry in enumerate(samples()):
        if index == 0:
            entry["userCertificate"] = certificate_der()
        connection.add(_dn(subtree, entry["telematikID"]), ["vzdEntry"], _ldap_attributes(entry))
    return subtree


def sync_for(stack: Stack, slapd: SlapdServer, subtree: str) -> LdapSync:
    config = LdapConfig(
        url=slapd.url, bind_dn=slapd.bind_dn, password=slapd.password, base_dn=subtree
    )
    return LdapSync(stack.ctx, config)


async def read(stack: Stack, ref: str) -> dict[str, Any]:
    response = await stack.client.get(f"{stack.directory_url}/{ref}")
    assert response.status_code == 200, response.text
    resource: dict[str, Any] = response.json()
    return resource


async def has_name(stack: Stack, ref: str, name: str | None) -> bool:
    """Whether ``ref`` exists (with ``name`` as its name, unless None)."""
    response = await stack.client.get(f"{stack.directory_url}/{ref}")
    if response.status_code != 200:
        return False
    return name is None or response.json().get("name") == name


def name_check(stack: Stack, ref: str, name: str | None) -> Callable[[], Awaitable[bool] | bool]:
    """A check for :func:`async_wait_until`: :func:`has_name` with these arguments."""

    async def check() -> bool:
        return await has_name(stack, ref, name)

    return check


async def versions(stack: Stack, *refs: str) -> dict[str, str]:
    return {ref: (await read(stack, ref))["meta"]["versionId"] for ref in refs}


async def run(sync: LdapSync) -> RunSummary:
    summary = await sync.run_once()
    assert summary is not None
    return summary


async def wait_past(high_water: str) -> None:
    """Poll the clock until a change made now gets a later modifyTimestamp (1 s resolution)."""

    def later() -> bool:
        return datetime.now(UTC).strftime("%Y%m%d%H%M%SZ") > high_water

    await async_wait_until(later, f"the clock to pass {high_water}", timeout=5)


async def test_af_10047_initial_sync_creates_the_mapped_resources(
    stack: Stack, slapd: SlapdServer
) -> None:
    subtree = populate(slapd)
    summary = await run(sync_for(stack, slapd, subtree))
    assert (summary.read, summary.written, summary.deactivated) == (3, 5, 0)

    organization = await read(stack, ORG)
    assert organization["name"] == "Pflegestation Marktheidenfeld"
    assert organization["alias"] == ["Pflegestation Marktheidenfeld gGmbH"]
    assert organization["identifier"][0]["value"] == "10-67.245.91000001"
    assert organization["type"][0]["coding"][0]["code"] == "1.2.276.0.76.4.245"
    assert organization["address"][0]["text"] == (
        "Esplanade 99\r\n97823\r\nMarktheidenfeld\r\nBayern\r\nDE"
    )
    assert organization["telecom"][0]["system"] == "other"
    assert organization["telecom"][0]["value"].startswith("-----BEGIN CERTIFICATE-----")
    service = await read(stack, HS)
    assert [s["coding"][0]["code"] for s in service["specialty"]] == ["PFL", "ALT"]
    assert service["providedBy"] == {"reference": ORG}
    practitioner = await read(stack, PRACT)
    assert practitioner["name"] == [{"text": "Sommer, Greta"}]
    expected = map_entry(LdapEntry.of(samples()[2]))[0]
    assert practitioner["qualification"] == expected["qualification"]
    for ref in (ORG, HS, ORG2, PRACT):
        assert (await read(stack, ref))["meta"]["tag"] == [{"system": ORIGIN, "code": "ldap"}]
    audit = stack.ctx.audit.query(actor=ACTOR)
    hs2 = "HealthcareService/ldap-hs-10-67.246.91000002"
    assert sorted(a.target for a in audit) == sorted([ORG, HS, ORG2, hs2, PRACT])
    assert {a.status for a in audit} == {201}


async def test_af_10047_second_run_makes_no_new_versions(stack: Stack, slapd: SlapdServer) -> None:
    subtree = populate(slapd)
    sync = sync_for(stack, slapd, subtree)
    await run(sync)
    before = await versions(stack, ORG, HS, ORG2, PRACT)
    again = await run(sync)
    assert again.written == 0
    assert await versions(stack, ORG, HS, ORG2, PRACT) == before


async def test_af_10047_modify_in_ldap_is_picked_up_incrementally(
    stack: Stack, slapd: SlapdServer
) -> None:
    subtree = populate(slapd)
    sync = sync_for(stack, slapd, subtree)
    await run(sync)
    before = await versions(stack, ORG, HS, ORG2, PRACT)
    connection = slapd.connect()

    await wait_past((await _state(sync)).high_water)
    connection.modify(
        _dn(subtree, "10-67.245.91000001"),
        {"organization": [("MODIFY_REPLACE", ["Pflegedienst Main-Spessart"])]},
    )
    summary = await run(sync)
    assert summary.written == 1
    assert (await read(stack, ORG))["alias"] == ["Pflegedienst Main-Spessart"]
    after = await versions(stack, ORG, HS, ORG2, PRACT)
    assert int(after[ORG]) == int(before[ORG]) + 1
    assert {k: v for k, v in after.items() if k != ORG} == {
        k: v for k, v in before.items() if k != ORG
    }

    # Incremental: the next run reads only entries changed at or after the high-water mark
    # (the one changed before, at the mark, and the one changed now), not the third.
    await wait_past((await _state(sync)).high_water)
    connection.modify(
        _dn(subtree, "10-67.235.91000003"),
        {"displayName": [("MODIFY_REPLACE", ["Sommer-Winter, Greta"])]},
    )
    summary = await run(sync)
    assert summary.read == 2
    assert summary.written == 1
    assert (await read(stack, PRACT))["name"] == [{"text": "Sommer-Winter, Greta"}]


async def test_af_10047_delete_in_ldap_deactivates_the_base_resources(
    stack: Stack, slapd: SlapdServer
) -> None:
    subtree = populate(slapd)
    sync = sync_for(stack, slapd, subtree)
    await run(sync)
    connection = slapd.connect()
    connection.delete(_dn(subtree, "10-67.245.91000001"))
    summary = await run(sync)
    assert summary.deactivated == 1
    assert (await read(stack, ORG))["active"] is False
    assert (await read(stack, HS))["active"] is False
    assert (await read(stack, ORG2))["active"] is True
    assert (await read(stack, PRACT))["active"] is True
    assert (await run(sync)).written == 0  # deactivated once

    entry = samples()[0]
    connection.add(_dn(subtree, entry["telematikID"]), ["vzdEntry"], _ldap_attributes(entry))
    await run(sync)
    assert (await read(stack, ORG))["active"] is True


async def test_af_10047_failed_sync_keeps_the_high_water_mark(
    stack: Stack, slapd: SlapdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    subtree = populate(slapd)
    sync = sync_for(stack, slapd, subtree)
    await run(sync)
    mark = (await _state(sync)).high_water
    await wait_past(mark)
    slapd.connect().modify(
        _dn(subtree, "10-67.246.91000002"),
        {"displayName": [("MODIFY_REPLACE", ["Geburtshaus am Leopoldsee"])]},
    )
    real = upstream.fhir

    async def refuse_transactions(ctx: Any, method: str, path: str, **kwargs: Any) -> Any:
        if (kwargs.get("body") or {}).get("type") == "transaction":
            return 503, {}, b'{"resourceType": "OperationOutcome", "issue": []}'
        return await real(ctx, method, path, **kwargs)

    monkeypatch.setattr(upstream, "fhir", refuse_transactions)
    with pytest.raises(ldapsync.SyncError):
        await sync.run_once()
    state = await _state(sync)
    assert state.high_water == mark
    assert state.last_result.startswith("failed")
    assert (await read(stack, ORG2))["name"] == "Geburtsklinik am Leopoldsee"

    monkeypatch.setattr(upstream, "fhir", real)
    await run(sync)
    assert (await read(stack, ORG2))["name"] == "Geburtshaus am Leopoldsee"
    assert (await _state(sync)).high_water > mark


async def test_af_10047_sync_keeps_what_owners_added(stack: Stack, slapd: SlapdServer) -> None:
    subtree = populate(slapd)
    sync = sync_for(stack, slapd, subtree)
    await run(sync)
    organization = await read(stack, ORG)
    organization["telecom"].append({"system": "phone", "value": "09391 1234"})
    organization["endpoint"] = [{"reference": "Endpoint/owner-endpoint"}]
    response = await stack.client.put(f"{stack.directory_url}/{ORG}", json=organization)
    assert response.status_code == 200, response.text
    await wait_past((await _state(sync)).high_water)
    slapd.connect().modify(
        _dn(subtree, "10-67.245.91000001"),
        {"displayName": [("MODIFY_REPLACE", ["Pflegestation Marktheidenfeld-Süd"])]},
    )
    await run(sync)
    synced = await read(stack, ORG)
    assert synced["name"] == "Pflegestation Marktheidenfeld-Süd"
    assert synced["endpoint"] == [{"reference": "Endpoint/owner-endpoint"}]
    assert {"system": "phone", "value": "09391 1234"} in synced["telecom"]


async def test_af_10047_only_the_lease_holder_syncs(stack: Stack, slapd: SlapdServer) -> None:
    sync = sync_for(stack, slapd, populate(slapd))
    assert await asyncio_call(sync, lambda: sync.store.acquire("other-instance", 60))
    assert await sync.run_once() is None
    await asyncio_call(sync, lambda: sync.store.release("other-instance"))
    assert await sync.run_once() is not None


async def test_af_10047_background_sync_every_interval(tmp_path: Path, slapd: SlapdServer) -> None:
    subtree = populate(slapd)
    ldap = {
        "url": slapd.url,
        "bind_dn": slapd.bind_dn,
        "password": slapd.password,
        "base_dn": subtree,
        "interval": 0.2,
    }
    async for stack in start_stack(tmp_path, ldap=ldap):
        initial = name_check(stack, ORG2, "Geburtsklinik am Leopoldsee")
        await async_wait_until(initial, "initial sync")
        slapd.connect().modify(
            _dn(subtree, "10-67.246.91000002"),
            {"displayName": [("MODIFY_REPLACE", ["Geburtshaus Lichtenrade"])]},
        )
        changed = name_check(stack, ORG2, "Geburtshaus Lichtenrade")
        await async_wait_until(changed, "the change")


async def test_af_10047_seed_file_mode_without_ldap(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(ENTRIES.read_text())
    async for stack in start_stack(tmp_path, ldap={"seed_file": seed}):
        await async_wait_until(name_check(stack, PRACT, None), "the seed to be applied")
        for ref in (ORG, HS, ORG2, PRACT):
            resource = await read(stack, ref)
            assert resource["meta"]["tag"] == [{"system": ORIGIN, "code": "ldap"}]
            assert resource["active"] is True
        assert (await read(stack, ORG))["name"] == "Pflegestation Marktheidenfeld"

        # A restart with an entry removed from the file deactivates it; unchanged ones stay.
        seed.write_text(json.dumps(samples()[1:]))
        before = await versions(stack, ORG2, PRACT)
        summary = await LdapSync(stack.ctx).apply_seed()
        assert summary.deactivated == 1
        assert (await read(stack, ORG))["active"] is False
        assert await versions(stack, ORG2, PRACT) == before


async def _state(sync: LdapSync) -> SyncState:
    state: SyncState = await asyncio_call(sync, sync.store.state)
    return state


async def asyncio_call(sync: LdapSync, function: Callable[[], T]) -> T:
    """Run a blocking store call in the proxy's executor."""
    return await asyncio.get_running_loop().run_in_executor(sync.ctx.executor, function)


def test_af_10047_sync_state_store_on_each_engine(proxy_db_url: str) -> None:
    db = open_database(proxy_db_url)
    try:
        store = LdapSyncStore(db)
        assert store.acquire("a", 60)
        assert not store.acquire("b", 60)
        assert store.acquire("a", 60)  # renewal
        store.release("a")
        assert store.acquire("b", 60)
        store.finish("failed: x")
        store.finish("ok", "20250101000000Z")
        state = store.state()
        assert (state.high_water, state.runs, state.last_result) == ("20250101000000Z", 2, "ok")
        store.written("ldap", ACTOR, [Written("1-1", "hba", True, ("Practitioner/p",))], {})
        store.written("ldap", ACTOR, [Written("2-2", "smcb", False, ())])
        assert store.present("ldap") == {"1-1"}
        assert store.kinds(["1-1", "2-2", "3-3"]) == {"1-1": "hba", "2-2": "smcb"}
    finally:
        db.close()
