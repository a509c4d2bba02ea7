"""The embedded provisioning backend: Messenger-Services as processes of the local supervisor.

A Messenger-Service ``D`` is two supervised processes, ``proxy@D`` and ``homeserver@D``
(planned by :func:`timkit.runtime.plan.plan_service`), plus its route ``D → host:port`` in
the federation's route file ``run/names.json``, through which every forward proxy and the
FHIR-Proxy find it. Its record (organisation, ports, database) is persisted in
``services/<D>/service.json``; a starting supervisor brings back every recorded service
(:meth:`EmbeddedBackend.restore`).

Ports: a domain listed in ``messenger_services`` uses its configured ``port`` and
``forward_proxy_port`` (and ``homeserver_port``, ``database``); any other domain gets free
ports once, kept in its record so they stay stable across restarts.

The HTTP face of this backend is :mod:`timkit.runtime.control_api`; a Kubernetes backend
would offer the same operations (ensure, status, services, remove).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
from pathlib import Path

from pydantic import ValidationError

from timkit.core.errors import Codes, TimkitError
from timkit.core.names import NameTable
from timkit.core.process import free_port
from timkit.core.tls import LocalPKI
from timkit.homeserver.config import check_domain
from timkit.runtime.config import TimkitConfig, shared_ports
from timkit.runtime.layout import Layout
from timkit.runtime.plan import ServiceRecord, endpoints, plan_service, route_target
from timkit.runtime.services import ServicePhase, ServiceStatus
from timkit.runtime.supervisor import Phase, Supervisor

logger = logging.getLogger(__name__)

MAX_ORGANISATION = 256
SERVICE_KINDS = ("proxy", "homeserver")


def component_names(domain: str) -> list[str]:
    """Names of the supervised components of the Messenger-Service ``domain``."""
    return [f"{kind}@{domain}" for kind in SERVICE_KINDS]


def validate_domain(domain: str) -> str:
    """``domain`` if it is a Matrix server name as TI-M uses it.

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` naming the rule that is broken.
    """
    try:
        return check_domain(domain)
    except ValueError as e:
        raise TimkitError(400, Codes.INVALID_PARAM, f"domain: {e}") from None


def read_records(layout: Layout) -> list[ServiceRecord]:
    """Every valid ``services/*/service.json`` (sorted by domain); broken ones are logged."""
    records: list[ServiceRecord] = []
    if not layout.services.is_dir():
        return records
    for path in sorted(layout.services.glob("*/service.json")):
        try:
            record = ServiceRecord.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as e:
            logger.warning("ignoring %s: %s", path, e)
            continue
        if record.domain != path.parent.name:
            logger.warning("ignoring %s: it records %s", path, record.domain)
            continue
        records.append(record)
    return records


def _write_record(path: Path, record: ServiceRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(record.model_dump_json(indent=2), "utf-8")
    tmp.replace(path)


class EmbeddedBackend:
    """Adds, reports and removes Messenger-Services on ``supervisor`` (module docstring).

    Args:
        config: the federation's configuration (bind address, configured services, data dir).
        supervisor: runs the services' processes; may or may not be running yet.

    Operations on one domain are serialised; different domains proceed in parallel.
    """

    def __init__(self, config: TimkitConfig, supervisor: Supervisor) -> None:
        self._config = config
        self._supervisor = supervisor
        self._layout = Layout(config.data_dir)
        self._pki = LocalPKI(self._layout.pki)
        self._names = NameTable(self._layout.names_file)
        self._records: dict[str, ServiceRecord] = {}
        self._stopping: set[str] = set()
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        self._configured = {s.domain: s for s in config.messenger_services}

    async def restore(self) -> list[str]:
        """Start every service recorded in the data directory again; their domains.

        A service that cannot be started is logged and skipped.
        """
        restored = []
        for record in read_records(self._layout):
            configured = self._configured.get(record.domain)
            current = record
            if configured is not None:
                current = record.model_copy(
                    update={
                        "port": configured.port,
                        "forward_proxy_port": configured.forward_proxy_port,
                        "homeserver_port": configured.homeserver_port or record.homeserver_port,
                        "database": configured.database,
                    }
                )
            if current.homeserver_port is None:  # recorded before Synapse moved behind the proxy
                current = current.model_copy(update={"homeserver_port": self._free_ports(1)[0]})
            if current != record:
                _write_record(self._layout.service_record(record.domain), current)
                record = current
            async with self._locks[record.domain]:
                self._records[record.domain] = record
                try:
                    await self._start(record)
                except (OSError, TimkitError) as e:
                    logger.error("cannot restore %s: %s", record.domain, e)
                    self._records.pop(record.domain, None)
                    continue
            restored.append(record.domain)
        logger.info("restored %d Messenger-Services", len(restored))
        return restored

    async def ensure(self, domain: str, organisation: str) -> tuple[ServiceStatus, bool]:
        """Provision ``domain`` for ``organisation`` unless it exists; (status, created).

        Returns as soon as the processes are started (phase ``starting``).

        Raises:
            TimkitError: 400 for an invalid domain or organisation; 409 when ``domain``
                exists for another organisation or is being removed; 500 when its processes
                cannot be started (nothing is left behind then).
        """
        validate_domain(domain)
        if not organisation.strip() or len(organisation) > MAX_ORGANISATION:
            raise TimkitError(
                400,
                Codes.INVALID_PARAM,
                f"organisation: must be a non-empty name of at most {MAX_ORGANISATION} chars",
            )
        async with self._locks[domain]:
            existing = self._records.get(domain)
            if existing is not None:
                if existing.organisation != organisation:
                    raise TimkitError(
                        409,
                        "TIMKIT_CONFLICT",
                        f"{domain} is provisioned for {existing.organisation!r}",
                    )
                status = self.status(domain)
                assert status is not None
                return status, False
            existed = self._layout.service_dir(domain).exists()
            record = self._allocate(domain, organisation)
            self._records[domain] = record
            try:
                await asyncio.to_thread(_write_record, self._layout.service_record(domain), record)
                await self._start(record)
            except (OSError, TimkitError) as e:
                await self._teardown(domain, delete_files=not existed)
                self._records.pop(domain, None)
                raise TimkitError(
                    500, Codes.UNKNOWN, f"cannot start the Messenger-Service {domain}: {e}"
                ) from e
            logger.info("provisioned %s for %s", domain, organisation)
            status = self.status(domain)
            assert status is not None
            return status, True

    def status(self, domain: str) -> ServiceStatus | None:
        """The status of ``domain``, or ``None`` when it is not provisioned."""
        record = self._records.get(domain)
        if record is None:
            return None
        components = [self._supervisor.component(name) for name in component_names(domain)]
        phases = [c.phase for c in components if c is not None]
        phase: ServicePhase
        if domain in self._stopping:
            phase = "stopping"
        elif len(phases) < len(components) or Phase.STOPPING in phases:
            phase = "starting"
        elif Phase.FAILED in phases:
            phase = "failed"
        elif Phase.STARTING in phases or Phase.RESTARTING in phases:
            phase = "starting"
        else:
            phase = "running"
        url = endpoints(self._config, record)
        return ServiceStatus(
            domain=domain,
            organisation=record.organisation,
            phase=phase,
            healthy=phase == "running" and all(p is Phase.HEALTHY for p in phases),
            client_url=url.client_url,
            federation_url=url.federation_url,
        )

    def services(self) -> list[ServiceStatus]:
        """The status of every provisioned service, sorted by domain."""
        statuses = [self.status(domain) for domain in sorted(self._records)]
        return [s for s in statuses if s is not None]

    async def remove(self, domain: str) -> bool:
        """Stop both processes, drop the route, delete the record and the service's data.

        Returns:
            False when ``domain`` is not provisioned (nothing to do).
        """
        async with self._locks[domain]:
            if domain not in self._records:
                return False
            self._stopping.add(domain)
            try:
                await self._teardown(domain)
            finally:
                self._stopping.discard(domain)
                self._records.pop(domain, None)
            logger.info("removed %s", domain)
            return True

    def _allocate(self, domain: str, organisation: str) -> ServiceRecord:
        """The record of a new service: configured or previously recorded ports, else free."""
        configured = self._configured.get(domain)
        if configured is not None:
            return ServiceRecord(
                domain=domain,
                organisation=organisation,
                port=configured.port,
                forward_proxy_port=configured.forward_proxy_port,
                homeserver_port=configured.homeserver_port or self._free_ports(1)[0],
                database=configured.database,
            )
        recorded = self._layout.service_record(domain)
        if recorded.exists():  # data of a service that could not be restored: keep its ports
            try:
                previous = ServiceRecord.model_validate_json(recorded.read_bytes())
                if previous.domain == domain:
                    return previous.model_copy(update={"organisation": organisation})
            except (OSError, ValidationError) as e:
                logger.warning("ignoring %s: %s", recorded, e)
        ports = self._free_ports(3)
        return ServiceRecord(
            domain=domain,
            organisation=organisation,
            port=ports[0],
            forward_proxy_port=ports[1],
            homeserver_port=ports[2],
        )

    def _free_ports(self, count: int) -> list[int]:
        """``count`` free loopback ports no configured or running service uses."""
        taken: set[int | None] = {port for _, port in shared_ports(self._config)}
        for c in self._configured.values():
            taken.update((c.port, c.forward_proxy_port, c.homeserver_port))
        for r in self._records.values():
            taken.update((r.port, r.forward_proxy_port, r.homeserver_port))
        ports: list[int] = []
        while len(ports) < count:
            port = free_port(self._config.runtime.bind)
            if port not in taken:
                taken.add(port)
                ports.append(port)
        return ports

    async def _start(self, record: ServiceRecord) -> None:
        """Write the service's files, add its processes, publish its route."""
        components = await asyncio.to_thread(
            plan_service, self._config, self._layout, self._pki, record
        )
        for component in components:
            await self._supervisor.add(component.spec())
        await asyncio.to_thread(self._names.set, record.domain, route_target(self._config, record))

    async def _teardown(self, domain: str, *, delete_files: bool = True) -> None:
        """Remove route and processes of ``domain``, then (``delete_files``) its record, data
        directory and certificate."""
        await asyncio.to_thread(self._names.remove, domain)
        await asyncio.gather(*(self._supervisor.remove(n) for n in component_names(domain)))
        if not delete_files:
            return

        def delete() -> None:
            shutil.rmtree(self._layout.service_dir(domain), ignore_errors=True)
            for suffix in (".crt", ".key"):
                (self._layout.pki / "certs" / f"{domain}{suffix}").unlink(missing_ok=True)

        await asyncio.to_thread(delete)
