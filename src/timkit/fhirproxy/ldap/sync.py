"""AF_10047: keep the base entries of the FHIR-Directory in step with the VZD-LDAP-Directory.

Contract:

* **What is written** - per LDAP entry its base resources as :mod:`~timkit.fhirproxy.ldap.mapping`
  maps them (Organization + HealthcareService for an SMC-B, Practitioner for an HBA), with fixed ids
  derived from the TelematikID and Origin ``ldap``. Only the LDAP-owned elements are replaced
  (:func:`~timkit.fhirproxy.ldap.mapping.merge`); what owners added stays. A resource whose merged
  form equals the stored one is not written, so a run over unchanged data creates no new versions.
* **Incremental** - each run asks LDAP for entries whose ``modifyTimestamp`` is at or after
  the high-water mark kept in the proxy database; the mark advances only when the whole run
  succeeded, so a failed run is repeated in full by the next one.
* **Deletions** - each run also lists the TelematikIDs present in LDAP (one attribute per
  entry) and compares them with the entries it has written before. The base resources of an
  entry gone from LDAP are set ``active: false``, not deleted: owners' Endpoints, Locations
  and PractitionerRoles still reference them, and gematik's ``LDAP2FHIR_Sync.adoc`` treats an
  entry without valid certificates the same way. An entry that comes back is reactivated.
  When LDAP lists no entry at all while entries were written before, the run deactivates
  nothing (an empty answer is far more likely a wrong base DN than an empty directory).
* **Writes** - through :mod:`~timkit.fhirproxy.upstream` as one FHIR ``transaction`` Bundle per
  batch of :data:`BATCH` entries (all or nothing; updates carry ``If-Match`` so a concurrent owner
  write is not lost but fails the batch, and the next run retries). Every written resource is
  audited with actor :data:`ACTOR`.
* **Seed file** - ``ldap.seed_file`` (JSON list of entries in the ``samples/eGBR`` form) is
  applied at start-up, without any LDAP server, as a snapshot: entries removed from the file
  since the last start are deactivated.
* **Schedule** - every ``ldap.interval`` seconds (default 2 h) while the proxy runs; after a
  failure again after at most :data:`RETRY` seconds. Of several proxy instances on one
  database, only the holder of the lease in the database synchronises. Each run logs a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import orjson
from aiohttp import web

from timkit.core.errors import UpstreamError
from timkit.fhirproxy import upstream
from timkit.fhirproxy.config import LdapConfig
from timkit.fhirproxy.context import CONTEXT_KEY, FhirProxyContext
from timkit.fhirproxy.ldap.mapping import (
    Kind,
    LdapEntry,
    Resource,
    deactivated,
    entries_from_json,
    kind_of,
    map_entry,
    merge,
    resource_ids,
    same,
)
from timkit.fhirproxy.ldap.source import LdapSource
from timkit.fhirproxy.storage.ldapstate import LdapSyncStore, Written

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTOR = "ldap-sync"
"""Audit actor of every write of the synchronisation."""
BATCH = 100
"""Entries per transaction Bundle."""
RETRY = 30.0
"""Longest wait before a failed run is retried."""
HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
"""This process's name in the lease."""


class SyncError(RuntimeError):
    """The FHIR-Directory refused a batch (nothing of that batch was written)."""


@dataclass
class RunSummary:
    """What one run did.

    Attributes:
        source: ``ldap`` or ``seed``.
        read: entries read (changed ones for an incremental LDAP run).
        written: resources created or updated.
        unchanged: entries whose resources needed no write.
        deactivated: entries gone from the source whose resources were set inactive.
        skipped: entries that could not be mapped (no TelematikID).
        high_water: the high-water mark after the run (LDAP runs).
        seconds: duration.
        targets: ``Type/id`` of every resource written.
    """

    source: str
    read: int = 0
    written: int = 0
    unchanged: int = 0
    deactivated: int = 0
    skipped: int = 0
    high_water: str = ""
    seconds: float = 0.0
    targets: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.read} entries read, {self.written} resources written,"
            f" {self.unchanged} entries unchanged, {self.deactivated} deactivated,"
            f" {self.skipped} skipped, high-water {self.high_water or '-'},"
            f" {self.seconds:.2f}s"
        )


@dataclass
class _Plan:
    """The writes of one batch and the entries they belong to."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    written: list[Written] = field(default_factory=list)


class LdapSync:
    """Synchronisation runs for one proxy context.

    Args:
        ctx: the proxy context (database, executor, HTTP client to the FHIR-Directory).
        config: LDAP settings; default ``ctx.config.ldap``.
    """

    def __init__(self, ctx: FhirProxyContext, config: LdapConfig | None = None) -> None:
        self.ctx = ctx
        self.config = config or ctx.config.ldap
        self.store = LdapSyncStore(ctx.db)
        self.source = LdapSource(self.config)

    @property
    def lease_ttl(self) -> float:
        """Seconds a lease lasts: the holder renews it every run and every batch."""
        return self.config.interval * 1.5 + 60.0

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.ctx.executor, partial(function, *args))

    async def run_once(self) -> RunSummary | None:
        """One incremental run against the LDAP server; None when another instance holds the lease.

        Raises:
            LdapError, SyncError, UpstreamError: the run failed; the high-water mark stays.
        """
        if not await self._call(self.store.acquire, HOLDER, self.lease_ttl):
            log.info("LDAP sync: another FHIR-Proxy instance holds the lease")
            return None
        started = time.monotonic()
        state = await self._call(self.store.state)
        try:
            present_ids = await self._call(self.source.telematik_ids)
            entries, skipped, newest = await self._call(self.source.changed, state.high_water)
            for dn in skipped:
                log.warning("LDAP sync: %s has no telematikID; skipped", dn)
            known = await self._call(self.store.present, "ldap")
            gone = known - present_ids - {e.telematik_id for e in entries}
            if known and not present_ids:
                log.warning("LDAP sync: LDAP lists no entries; deactivating nothing")
                gone = set()
            summary = await self._apply("ldap", entries, gone, renew=True)
        except Exception as e:
            await self._call(self.store.finish, f"failed: {e}")
            raise
        summary.skipped, summary.high_water = len(skipped), newest
        summary.seconds = time.monotonic() - started
        await self._call(self.store.finish, str(summary), newest)
        log.info("LDAP sync %s", summary)
        return summary

    async def apply_seed(self) -> RunSummary:
        """Apply ``seed_file`` as a snapshot of the entries (see the module docstring)."""
        started = time.monotonic()
        path = self.config.seed_file
        if path is None:
            raise ValueError("no ldap.seed_file configured")
        entries = entries_from_json(await self._call(path.read_bytes))
        known = await self._call(self.store.present, "seed")
        gone = known - {e.telematik_id for e in entries}
        summary = await self._apply("seed", entries, gone, renew=False)
        summary.seconds = time.monotonic() - started
        log.info("LDAP sync %s (%s)", summary, path)
        return summary

    async def _apply(
        self, source: str, entries: Sequence[LdapEntry], gone: set[str], *, renew: bool
    ) -> RunSummary:
        """Write the resources of ``entries`` and deactivate those of ``gone``, batch by batch."""
        unique = list({e.telematik_id: e for e in entries}.values())
        kinds = await self._call(self.store.kinds, [*gone, *(e.telematik_id for e in unique)])
        summary = RunSummary(source, read=len(unique))
        work: list[LdapEntry | str] = [*unique, *sorted(gone)]
        for start in range(0, len(work), BATCH):
            batch = work[start : start + BATCH]
            plan = await self._plan(batch, kinds)
            statuses = await self._transaction(plan.entries) if plan.entries else {}
            await self._call(self.store.written, source, ACTOR, plan.written, statuses)
            for written in plan.written:
                if not written.present:
                    summary.deactivated += 1
                elif not written.targets:
                    summary.unchanged += 1
                summary.targets.extend(written.targets)
            summary.written += len(plan.entries)
            if renew and not await self._call(self.store.acquire, HOLDER, self.lease_ttl):
                raise SyncError("lost the LDAP sync lease to another FHIR-Proxy instance")
        return summary

    async def _plan(self, batch: Iterable[LdapEntry | str], kinds: dict[str, str]) -> _Plan:
        """The PUTs a batch needs, from the mapped resources and the directory's current ones.

        An entry is a present :class:`LdapEntry` or the TelematikID of one gone from the
        source. An entry whose kind changed (HBA ↔ SMC-B) has the resources of its old kind
        deactivated.
        """
        wanted: list[tuple[str, Kind, list[Resource], list[str]]] = []
        for item in batch:
            if isinstance(item, LdapEntry):
                kind = kind_of(item)
                old = kinds.get(item.telematik_id, kind.value)
                stale = [] if old == kind.value else resource_ids(item.telematik_id, Kind(old))
                wanted.append((item.telematik_id, kind, map_entry(item), stale))
            elif item in kinds:
                old_kind = Kind(kinds[item])
                wanted.append((item, old_kind, [], resource_ids(item, old_kind)))
        refs = [r for tid, kind, res, stale in wanted for r in [*resource_ids(tid, kind), *stale]]
        current = await self._read(refs)
        plan = _Plan()
        for telematik_id, kind, resources, stale in wanted:
            targets: list[str] = []
            pairs = zip(resource_ids(telematik_id, kind), resources, strict=False)
            for ref, mapped in pairs:
                targets += _put(plan, ref, current.get(ref), merge, mapped)
            for ref in stale:
                if ref in current:
                    targets += _deactivate(plan, ref, current[ref])
            present = bool(resources)
            plan.written.append(Written(telematik_id, kind.value, present, tuple(targets)))
        return plan

    async def _read(self, refs: Sequence[str]) -> dict[str, tuple[Resource, str]]:
        """Current version (resource, ETag) of each of ``refs`` that exists (one batch Bundle)."""
        if not refs:
            return {}
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": ref}} for ref in refs],
        }
        response = await self._post(bundle)
        found: dict[str, tuple[Resource, str]] = {}
        for ref, entry in zip(refs, response.get("entry") or [], strict=False):
            status = str(entry.get("response", {}).get("status", ""))
            if status.startswith("200") and isinstance(entry.get("resource"), dict):
                found[ref] = (entry["resource"], str(entry["response"].get("etag", "")))
            elif not status.startswith(("404", "410")):
                raise SyncError(f"reading {ref} from the FHIR-Directory: {status}")
        return found

    async def _transaction(self, entries: list[dict[str, Any]]) -> dict[str, int]:
        """POST ``entries`` as one transaction; the status of each ``Type/id`` written."""
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        response = await self._post(bundle)
        statuses: dict[str, int] = {}
        for sent, got in zip(entries, response.get("entry") or [], strict=False):
            code = str(got.get("response", {}).get("status", "200")).split(" ", 1)[0]
            statuses[sent["request"]["url"]] = int(code) if code.isdigit() else 200
        return statuses

    async def _post(self, bundle: dict[str, Any]) -> dict[str, Any]:
        status, _, raw = await upstream.fhir(self.ctx, "POST", "/", body=bundle)
        if status != 200:
            raise SyncError(f"FHIR-Directory answered {status} to a {bundle['type']}: {_why(raw)}")
        result: dict[str, Any] = orjson.loads(raw)
        return result


def _put(
    plan: _Plan,
    ref: str,
    current: tuple[Resource, str] | None,
    combine: Callable[[Resource | None, Resource], Resource],
    mapped: Resource,
) -> list[str]:
    """Add the PUT of ``ref`` to ``plan`` unless it would change nothing; the targets written."""
    stored = current[0] if current else None
    resource = combine(stored, mapped)
    if same(stored, resource):
        return []
    request: dict[str, str] = {"method": "PUT", "url": ref}
    if current is not None and current[1]:
        request["ifMatch"] = current[1]
    plan.entries.append({"resource": resource, "request": request})
    return [ref]


def _deactivate(plan: _Plan, ref: str, current: tuple[Resource, str]) -> list[str]:
    if current[0].get("active") is False:
        return []
    return _put(plan, ref, current, lambda stored, _: deactivated(stored or {}), current[0])


def _why(raw: bytes) -> str:
    """The diagnostics of an OperationOutcome body, or its start."""
    try:
        body = orjson.loads(raw)
        issues = body.get("issue") or []
        return "; ".join(str(i.get("diagnostics", i.get("code", ""))) for i in issues)[:500]
    except (orjson.JSONDecodeError, AttributeError):
        return raw[:200].decode("utf-8", errors="replace")


# --- background task ---------------------------------------------------------------------

_TASK_KEY = web.AppKey("fhirproxy.ldapsync.task", asyncio.Task[None])


async def _seed_until_applied(sync: LdapSync) -> None:
    """Apply the seed file; retry while the directory is unreachable, give up on a bad file."""
    delay = 1.0
    while True:
        try:
            await sync.apply_seed()
            return
        except (OSError, ValueError) as e:
            log.error("LDAP sync: seed file %s not applied: %s", sync.config.seed_file, e)
            return
        except (SyncError, UpstreamError) as e:
            log.warning("LDAP sync: seed file not applied (%s); retrying in %.0fs", e, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY)


async def run_forever(sync: LdapSync) -> None:
    """Apply the seed file (if any), then run every ``interval`` seconds (if a URL is set)."""
    if sync.config.seed_file is not None:
        await _seed_until_applied(sync)
    if not sync.config.url:
        return
    while True:
        delay = sync.config.interval
        try:
            await sync.run_once()
        except Exception:
            log.exception("LDAP sync failed; the high-water mark stays")
            delay = min(delay, RETRY)
        await asyncio.sleep(delay)


async def _start(app: web.Application) -> None:
    sync = LdapSync(app[CONTEXT_KEY])
    app[_TASK_KEY] = asyncio.create_task(run_forever(sync), name="ldap-sync")


async def _stop(app: web.Application) -> None:
    task = app.get(_TASK_KEY)
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    ctx = app[CONTEXT_KEY]
    await asyncio.get_running_loop().run_in_executor(
        ctx.executor, LdapSyncStore(ctx.db).release, HOLDER
    )


def setup(app: web.Application) -> None:
    """Run the synchronisation in the background while ``app`` runs (when LDAP or a seed file
    is configured)."""
    config = app[CONTEXT_KEY].config.ldap
    if config.url or config.seed_file is not None:
        app.on_startup.append(_start)
        app.on_cleanup.append(_stop)
