"""AF_10060 as a persisted state machine, driven by one worker task in the RD process.

States (column ``state``; ``step`` names the step being worked on or, once failed, the step
that failed)::

    requested ─▶ creating ─▶ waiting_healthy ─▶ registering ─▶ active
                   │               │                 │
                   └───────────────┴────────┬────────┘ (gave up)
                                            ▼
                                       rolling_back ─▶ failed
    (any) ── deprovision ─▶ deregistering ─▶ deleting ─▶ deleted

* ``creating``: ``backend.ensure(domain, organisation)``;
* ``waiting_healthy``: polls ``backend.status`` until running and healthy
  (``provisioning.healthy_timeout``, else rolled back);
* ``registering``: ``POST /federation`` at the VZD-FHIR-Directory. A 409 for a domain we
  registered ourselves for the same TelematikID counts as done (the RD crashed after the
  directory answered); a domain of someone else rolls back;
* ``rolling_back``: removes the domain from the directory if we registered it, then removes
  the service from the backend: a service that cannot join the federation leaves nothing;
* ``deregistering``: ``DELETE /federation/{domain}`` **first**, so the domain leaves the
  federation before its homeserver stops; ``deleting``: ``backend.remove`` until the backend
  no longer knows it.

Every step is idempotent and every transition is one compare-and-set on the row
(:func:`~timkit.registration.storage.services.transition`), so the worker may be killed at
any point: :meth:`Provisioner.start` resumes every non-terminal service and re-ensures every
active one at the backend. A step failing with an unreachable backend or directory is retried
every ``provisioning.retry_interval`` seconds with the error visible on the row; after
``provisioning.max_attempts`` tries a provisioning step gives up (rolled back), while
deregistering, deleting and rolling back retry until they succeed, since giving up there would
leave an orphan.

Each provisioning run that ends (``active`` or rolled back) writes one raw-data record
``AF_10060`` (ML-132585). After the directory accepted or removed one of the RD's domains,
``on_federation_change`` is called (the RD pulls its federation list at once then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from timkit.core.db import Database
from timkit.core.errors import TemporaryUpstreamError, TimkitError
from timkit.core.lifecycle import wait_event
from timkit.core.rawdata import RawDataSink
from timkit.registration.config import ProvisioningSettings
from timkit.registration.directory_client import DirectoryClient, Ownership
from timkit.registration.provisioning.backend import Phase, ProvisioningBackend
from timkit.registration.storage import services
from timkit.registration.storage.services import Service

log = logging.getLogger(__name__)

T = TypeVar("T")
USE_CASE = "AF_10060"
COMPONENT = "registration"
IDLE_POLL = 5.0


class State(StrEnum):
    """Where a Messenger-Service is (see the module docstring)."""

    REQUESTED = "requested"
    CREATING = "creating"
    WAITING_HEALTHY = "waiting_healthy"
    REGISTERING = "registering"
    ACTIVE = "active"
    ROLLING_BACK = "rolling_back"
    FAILED = "failed"
    DEREGISTERING = "deregistering"
    DELETING = "deleting"
    DELETED = "deleted"


TERMINAL = frozenset({State.ACTIVE, State.FAILED, State.DELETED})
PROVISIONING = (State.REQUESTED, State.CREATING, State.WAITING_HEALTHY, State.REGISTERING)
GIVES_UP = frozenset(PROVISIONING)
"""States whose step gives up after ``max_attempts``; the others retry until they succeed."""

PROGRESS = {
    State.REQUESTED: 5,
    State.CREATING: 20,
    State.WAITING_HEALTHY: 50,
    State.REGISTERING: 80,
    State.ACTIVE: 100,
    State.ROLLING_BACK: 90,
    State.FAILED: 100,
    State.DEREGISTERING: 30,
    State.DELETING: 60,
    State.DELETED: 100,
}
"""Progress in percent shown for each state."""


class Provisioner:
    """Drives every non-terminal service to a terminal state (see the module docstring).

    Args:
        db: the RD database (migration 2).
        settings: ``provisioning`` settings.
        backend: creates and removes the services' processes.
        directory: the VZD-FHIR-Directory client.
        rawdata: raw-data sink for AF_10060 records.
        executor: threads for the blocking database calls.
        clock: wall clock in seconds, injectable for tests.
        on_federation_change: called (must not block) after a domain was registered at or
            removed from the directory.
    """

    def __init__(
        self,
        db: Database,
        settings: ProvisioningSettings,
        backend: ProvisioningBackend,
        directory: DirectoryClient,
        rawdata: RawDataSink,
        *,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.time,
        on_federation_change: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.on_federation_change = on_federation_change
        self.settings = settings
        self.backend = backend
        self.directory = directory
        self.rawdata = rawdata
        self.executor = executor
        self.clock = clock
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._drivers: dict[str, asyncio.Task[None]] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker: it resumes every pending service, then reconciles active ones."""
        self._loop_task = asyncio.create_task(self._run(), name="provisioning")

    async def reconcile(self) -> None:
        """Re-ensure every active service at the backend (it may have lost them meanwhile)."""
        for service in await self._blocking(self._read_states, [State.ACTIVE]):
            try:
                status = await self.backend.ensure(service.domain, service.organisation)
            except TimkitError as e:
                log.error("cannot reconcile active service %s: %s", service.domain, e)
                continue
            if status.client_url and status.client_url != service.client_url:
                await self._write(service, client_url=status.client_url)

    async def stop(self) -> None:
        """Stop the worker and its step tasks (a step cut short is repeated on next start)."""
        tasks = [t for t in (self._loop_task, *self._drivers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop_task = None
        self._drivers.clear()

    def kick(self) -> None:
        """Look for work now (after a request changed a row)."""
        self._wake.set()

    # -- helpers --------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The clock in Unix milliseconds."""
        return int(self.clock() * 1000)

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def _read_states(self, states: list[State]) -> list[Service]:
        with self.db.read() as cur:
            return services.in_states(cur, [s.value for s in states])

    def _read(self, domain: str) -> Service | None:
        with self.db.read() as cur:
            return services.get(cur, domain)

    def _transition(self, service: Service, changes: dict[str, Any]) -> bool:
        with self.db.write() as tx:
            return services.transition(tx, service, **changes)

    async def _write(self, service: Service, **changes: Any) -> bool:
        written = await self._blocking(self._transition, service, changes)
        if not written:
            log.info("service %s changed meanwhile; re-reading", service.domain)
        return written

    async def _enter(self, service: Service, state: State, **changes: Any) -> bool:
        """Move to ``state``: its step starts now, attempts and error reset."""
        now = self.now_ms()
        fields: dict[str, Any] = {
            "state": state.value,
            "step": state.value,
            "attempts": 0,
            "error": "",
            "step_started_ms": now,
            "next_attempt_ms": now,
        }
        fields.update(changes)
        return await self._write(service, **fields)

    # -- worker ---------------------------------------------------------------------------

    async def _run(self) -> None:
        pending = [s for s in State if s not in TERMINAL]
        reconciling = asyncio.create_task(self.reconcile(), name="provisioning reconcile")
        try:
            await self._schedule(pending)
        finally:
            reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciling

    async def _schedule(self, pending: list[State]) -> None:
        while True:
            self._wake.clear()
            rows = await self._blocking(self._read_states, pending)
            now = self.now_ms()
            wake_at: int | None = None
            for service in rows:
                if service.domain in self._drivers:
                    continue
                if service.next_attempt_ms <= now:
                    self._drivers[service.domain] = asyncio.create_task(
                        self._drive(service.domain), name=f"provision {service.domain}"
                    )
                else:
                    wake_at = min(wake_at or service.next_attempt_ms, service.next_attempt_ms)
            timeout = IDLE_POLL if wake_at is None else max(0.0, (wake_at - now) / 1000)
            await wait_event(self._wake, min(timeout, IDLE_POLL))

    async def _drive(self, domain: str) -> None:
        try:
            while True:
                service = await self._blocking(self._read, domain)
                if service is None or service.state in TERMINAL:
                    return
                if service.next_attempt_ms > self.now_ms():
                    return
                await self._advance(service)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("provisioning worker failed on %s", domain)
        finally:
            self._drivers.pop(domain, None)
            self._wake.set()

    async def _advance(self, service: Service) -> None:
        state = State(service.state)
        try:
            await _STEPS[state](self, service)
        except TimkitError as e:
            await self._failed_try(service, e)

    async def _failed_try(self, service: Service, error: TimkitError) -> None:
        attempts = service.attempts + 1
        message = error.describe()
        state = State(service.state)
        log.warning("%s: %s failed (try %d): %s", service.domain, state, attempts, message)
        if state in GIVES_UP and attempts >= self.settings.max_attempts:
            await self._give_up(
                service, f"{state.value} failed after {attempts} tries: {message}", error.status
            )
            return
        delay = self.settings.retry_interval
        if state not in GIVES_UP:
            delay *= min(2 ** max(0, attempts - self.settings.max_attempts), 64)
        if state is State.ROLLING_BACK:  # keep the reason of the failure visible
            message = service.error
        await self._write(
            service,
            attempts=attempts,
            error=message,
            next_attempt_ms=self.now_ms() + int(delay * 1000),
        )

    async def _give_up(self, service: Service, reason: str, status: int) -> None:
        """End the provisioning run as failed; roll back whatever exists."""
        log.error("provisioning %s failed: %s", service.domain, reason)
        if await self._enter(service, State.ROLLING_BACK, step=service.state, error=reason):
            self._record(service, "failure", status)

    def _record(self, service: Service, result: str, status: int) -> None:
        start = datetime.fromtimestamp(service.run_started_ms / 1000, UTC)
        duration = max(0, self.now_ms() - service.run_started_ms)
        self.rawdata.record(USE_CASE, COMPONENT, start, float(duration), result, status)

    # -- steps ----------------------------------------------------------------------------

    async def _requested(self, service: Service) -> None:
        await self._enter(service, State.CREATING)

    async def _creating(self, service: Service) -> None:
        status = await self.backend.ensure(service.domain, service.organisation)
        await self._enter(
            service,
            State.WAITING_HEALTHY,
            client_url=status.client_url,
            federation_url=status.federation_url,
        )

    async def _waiting_healthy(self, service: Service) -> None:
        status = await self.backend.status(service.domain)
        if status is None:
            await self._enter(service, State.CREATING)
            return
        if status.ready:
            await self._enter(
                service,
                State.REGISTERING,
                client_url=status.client_url or service.client_url,
                federation_url=status.federation_url or service.federation_url,
            )
            return
        if status.phase is Phase.FAILED:
            await self._give_up(service, "the Messenger-Service failed to start", 502)
            return
        waited = (self.now_ms() - service.step_started_ms) / 1000
        if waited > self.settings.healthy_timeout:
            await self._give_up(
                service, f"the Messenger-Service was not healthy after {waited:.0f} s", 504
            )
            return
        await self._write(
            service,
            next_attempt_ms=self.now_ms() + int(self.settings.poll_interval * 1000),
        )

    async def _registering(self, service: Service) -> None:
        try:
            await self.directory.add_domain(service.domain, service.telematik_id)
        except TemporaryUpstreamError:
            raise
        except TimkitError as e:
            if e.status == 409 and await self._registered_by_us(service):
                pass  # registered before a crash: done
            elif e.status in (400, 403, 409):
                reason = f"the VZD-FHIR-Directory refused the domain: {e.message}"
                await self._give_up(service, reason, e.status)
                return
            else:
                raise
        self._federation_changed()
        if await self._enter(service, State.ACTIVE, registered=True):
            self._record(service, "success", 201)
            log.info("Messenger-Service %s is active", service.domain)

    async def _registered_by_us(self, service: Service) -> bool:
        if await self.directory.domain_owner(service.domain) is not Ownership.OURS:
            return False
        held = await self.directory.get_domain(service.domain)
        return held is not None and held.telematik_id == service.telematik_id

    async def _rolling_back(self, service: Service) -> None:
        if service.registered:
            await self._deregister(service)
        await self.backend.remove(service.domain)
        await self._write(
            service,
            state=State.FAILED.value,
            registered=False,
            next_attempt_ms=self.now_ms(),
        )

    async def _deregister(self, service: Service) -> None:
        try:
            if await self.directory.delete_domain(service.domain):
                self._federation_changed()
        except TemporaryUpstreamError:
            raise
        except TimkitError as e:
            if e.status != 403:  # 403: another provider's domain, so not ours to remove
                raise

    def _federation_changed(self) -> None:
        if self.on_federation_change is not None:
            self.on_federation_change()

    async def _deregistering(self, service: Service) -> None:
        await self._deregister(service)  # 404 (never registered) and 403 (not ours) are fine
        await self._enter(service, State.DELETING, registered=False)

    async def _deleting(self, service: Service) -> None:
        await self.backend.remove(service.domain)
        status = await self.backend.status(service.domain)
        if status is None:
            await self._enter(service, State.DELETED, client_url="", federation_url="")
            log.info("Messenger-Service %s deleted", service.domain)
            return
        await self._write(
            service,
            next_attempt_ms=self.now_ms() + int(self.settings.poll_interval * 1000),
        )


_STEPS = {
    State.REQUESTED: Provisioner._requested,
    State.CREATING: Provisioner._creating,
    State.WAITING_HEALTHY: Provisioner._waiting_healthy,
    State.REGISTERING: Provisioner._registering,
    State.ROLLING_BACK: Provisioner._rolling_back,
    State.DEREGISTERING: Provisioner._deregistering,
    State.DELETING: Provisioner._deleting,
}
