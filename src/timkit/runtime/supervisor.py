"""A supervisor for a set of local processes: start, health-check, restart, stop.

The supervisor is the only parent of the components it runs. It keeps a JSON state file
current so that other processes (``timkit status``, ``timkit up`` waiting for health) can see
each component's pid, health and restart count without talking to it.

Lifecycle of one component::

    starting ──healthy probe──▶ healthy ──probe fails──▶ unhealthy ──probe ok──▶ healthy
        │                          │
        └──────── process exits ───┴──▶ restarting (back-off) ──▶ starting …
                                             └── after max_restarts ──▶ failed

Components can join and leave while the supervisor runs (:meth:`Supervisor.add`,
:meth:`Supervisor.remove`); a component being removed is ``stopping`` until its process has
ended, then it disappears from the state file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import httpx
from pydantic import BaseModel

from timkit.core.errors import Codes, TimkitError
from timkit.core.http import async_client
from timkit.core.process import die_with_parent, pid_alive, process_started

logger = logging.getLogger(__name__)


class Phase(StrEnum):
    """Where a component is in its lifecycle."""

    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ProcessSpec:
    """How to run and check one component.

    Attributes:
        name: unique name, also the stem of its log file.
        kind: component kind (``homeserver``, ``proxy``, ``fhir-proxy`` …).
        argv: command line; ``argv[0]`` is an executable path.
        url: the component's public base URL (shown in status).
        health_url: URL that answers 2xx when the component is ready.
        log_file: where the child's stdout and stderr go (appended).
        env: extra environment variables for the child.
    """

    name: str
    kind: str
    argv: tuple[str, ...]
    url: str
    health_url: str
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)


class ComponentState(BaseModel):
    """One component as recorded in the state file."""

    name: str
    kind: str
    url: str
    pid: int | None
    phase: Phase
    healthy: bool
    restarts: int
    log_file: str
    health_url: str = ""


class SupervisorState(BaseModel):
    """The state file's content.

    ``supervisor_started`` is the supervisor process's start time (seconds since the epoch,
    as the kernel reports it), so that a reused pid is never mistaken for the supervisor.
    """

    supervisor_pid: int
    supervisor_started: float
    started_at: str
    stopping: bool
    components: list[ComponentState]


@dataclass(frozen=True)
class RestartPolicy:
    """Bounded restarts with exponential back-off.

    Attributes:
        max_restarts: consecutive restarts before a component is marked failed.
        backoff: first delay in seconds; doubled per attempt up to ``backoff_max``.
        backoff_max: upper bound of the delay.
        stable_after: seconds of health after which the restart count resets.
    """

    max_restarts: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    stable_after: float = 60.0

    def delay(self, attempt: int) -> float:
        """Delay before restart number ``attempt`` (1-based)."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.backoff_max))


class _Managed:
    """One supervised child process."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.proc: asyncio.subprocess.Process | None = None
        self.phase = Phase.STARTING
        self.restarts = 0
        self.healthy_since: float | None = None
        self.stopped = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    async def start(self) -> None:
        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.spec.env}
        with open(self.spec.log_file, "ab") as log:  # noqa: ASYNC230 - local append, instant
            self.proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent,
            )
        self.phase = Phase.STARTING
        self.healthy_since = None
        logger.info("started %s (pid %d)", self.spec.name, self.proc.pid)

    async def stop(self, timeout: float) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            logger.warning("%s did not stop within %.0fs; killing it", self.spec.name, timeout)
            proc.kill()
            await proc.wait()
        logger.info("stopped %s", self.spec.name)

    def snapshot(self) -> ComponentState:
        return ComponentState(
            name=self.spec.name,
            kind=self.spec.kind,
            url=self.spec.url,
            pid=self.pid,
            phase=self.phase,
            healthy=self.phase is Phase.HEALTHY,
            restarts=self.restarts,
            log_file=str(self.spec.log_file),
            health_url=self.spec.health_url,
        )


class Supervisor:
    """Runs ``specs`` until :meth:`request_stop` or SIGTERM/SIGINT; keeps ``state_file`` current.

    Components may be added and removed before and while :meth:`run` runs; names are unique.
    Every change is reflected in the state file at once.

    Args:
        specs: the components, started in this order.
        state_file: JSON file (see :class:`SupervisorState`), removed on clean exit.
        ca_cert: CA that HTTPS health URLs are verified against.
        policy: restart policy.
        health_interval: seconds between health probes.
        stop_timeout: seconds a child gets after SIGTERM before SIGKILL.
    """

    def __init__(
        self,
        specs: list[ProcessSpec],
        state_file: Path,
        *,
        ca_cert: Path | None = None,
        policy: RestartPolicy | None = None,
        health_interval: float = 0.25,
        stop_timeout: float = 15.0,
    ) -> None:
        self._managed: dict[str, _Managed] = {}
        for spec in specs:
            if spec.name in self._managed:
                raise TimkitError(500, Codes.UNKNOWN, f"component {spec.name!r} is listed twice")
            self._managed[spec.name] = _Managed(spec)
        self._state_file = state_file
        self._ca_cert = ca_cert
        self._policy = policy or RestartPolicy()
        self._health_interval = health_interval
        self._stop_timeout = stop_timeout
        self._stop = asyncio.Event()
        self._running = False
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._finished = False
        self._started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._last_written = ""

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop every component and return."""
        self._stop.set()

    def component(self, name: str) -> ComponentState | None:
        """The current state of component ``name``, or ``None`` when there is none."""
        managed = self._managed.get(name)
        return managed.snapshot() if managed is not None else None

    def components(self) -> list[ComponentState]:
        """The current state of every component, in start order."""
        return [m.snapshot() for m in self._managed.values()]

    async def add(self, spec: ProcessSpec) -> bool:
        """Supervise ``spec`` too: started at once when :meth:`run` is running, else by it.

        Returns:
            True when added; False when a component of that name exists already (unchanged).

        Raises:
            TimkitError: 503 when the supervisor is stopping; OSError when the process
                cannot be started (the component is then not added).
        """
        if self._stop.is_set():
            raise TimkitError(503, Codes.UNKNOWN, "the supervisor is stopping")
        if spec.name in self._managed:
            return False
        managed = _Managed(spec)
        self._managed[spec.name] = managed
        if self._running:
            try:
                await managed.start()
            except BaseException:
                self._managed.pop(spec.name, None)
                raise
            self._watchers[spec.name] = asyncio.create_task(self._watch(managed))
            self._write_state(stopping=False)
        return True

    async def remove(self, name: str) -> bool:
        """Stop component ``name`` (SIGTERM, SIGKILL after ``stop_timeout``) and forget it.

        While its process ends the component is ``stopping`` in the state file; afterwards it
        is gone from it. Returns False when there is no such component.
        """
        managed = self._managed.get(name)
        if managed is None:
            return False
        if managed.phase is Phase.STOPPING:
            await managed.stopped.wait()
            return True
        managed.phase = Phase.STOPPING
        self._write_state(stopping=False)
        watcher = self._watchers.pop(name, None)
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        try:
            await managed.stop(self._stop_timeout)
        finally:
            if self._managed.get(name) is managed:
                del self._managed[name]
            managed.stopped.set()
            self._write_state(stopping=self._stop.is_set())
        return True

    async def run(self) -> None:
        """Start all components, supervise them, and stop them all when asked."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            self._running = True  # from here on, add() starts what it adds itself
            initial = list(self._managed.values())
            await asyncio.gather(*(m.start() for m in initial))
            self._write_state(stopping=False)
            async with async_client(self._ca_cert, timeout=2.0) as client:
                for managed in initial:
                    self._watchers[managed.spec.name] = asyncio.create_task(self._watch(managed))
                prober = asyncio.create_task(self._probe_loop(client))
                await self._stop.wait()
                tasks = [prober, *self._watchers.values()]
                self._watchers.clear()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._running = False
            self._write_state(stopping=True)
            await asyncio.gather(*(m.stop(self._stop_timeout) for m in self._managed.values()))
            self._finished = True
            self._state_file.unlink(missing_ok=True)
            logger.info("all components stopped")

    async def _watch(self, managed: _Managed) -> None:
        """Restart ``managed`` whenever it exits, within the restart policy."""
        while True:
            assert managed.proc is not None
            code = await managed.proc.wait()
            if self._stop.is_set() or managed.phase is Phase.STOPPING:
                return
            if managed.restarts >= self._policy.max_restarts:
                managed.phase = Phase.FAILED
                logger.error(
                    "%s exited with code %s; giving up after %d restarts (see %s)",
                    managed.spec.name,
                    code,
                    managed.restarts,
                    managed.spec.log_file,
                )
                self._write_state(stopping=False)
                return
            managed.restarts += 1
            delay = self._policy.delay(managed.restarts)
            managed.phase = Phase.RESTARTING
            logger.warning(
                "%s exited with code %s; restart %d/%d in %.1fs",
                managed.spec.name,
                code,
                managed.restarts,
                self._policy.max_restarts,
                delay,
            )
            self._write_state(stopping=False)
            await asyncio.sleep(delay)
            await managed.start()
            self._write_state(stopping=False)

    async def _probe_loop(self, client: httpx.AsyncClient) -> None:
        loop = asyncio.get_running_loop()
        while True:
            managed = list(self._managed.values())
            await asyncio.gather(*(self._probe(client, m, loop.time()) for m in managed))
            self._write_state(stopping=False)
            await asyncio.sleep(self._health_interval)

    async def _probe(self, client: httpx.AsyncClient, managed: _Managed, now: float) -> None:
        skip = (Phase.RESTARTING, Phase.FAILED, Phase.STOPPING)
        if managed.pid is None or managed.phase in skip:
            return
        healthy = await probe(client, managed.spec.health_url)
        if managed.phase is Phase.STOPPING:
            return
        if healthy and managed.phase is not Phase.HEALTHY:
            logger.info("%s is healthy", managed.spec.name)
            managed.phase = Phase.HEALTHY
            managed.healthy_since = now
        elif not healthy and managed.phase is Phase.HEALTHY:
            logger.warning("%s stopped answering %s", managed.spec.name, managed.spec.health_url)
            managed.phase = Phase.UNHEALTHY
            managed.healthy_since = None
        if (
            managed.healthy_since is not None
            and managed.restarts
            and now - managed.healthy_since > self._policy.stable_after
        ):
            managed.restarts = 0

    def _write_state(self, *, stopping: bool) -> None:
        if self._finished:
            return
        state = SupervisorState(
            supervisor_pid=os.getpid(),
            supervisor_started=process_started(os.getpid()),
            started_at=self._started_at,
            stopping=stopping,
            components=self.components(),
        )
        text = state.model_dump_json(indent=2)
        if text == self._last_written:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self._state_file)
        self._last_written = text


async def probe(client: httpx.AsyncClient, url: str) -> bool:
    """Whether ``url`` answers with a 2xx status."""
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return False
    return response.is_success


def read_state(state_file: Path) -> SupervisorState | None:
    """The state written by a live supervisor, or ``None`` when none is running."""
    try:
        state = SupervisorState.model_validate(json.loads(state_file.read_text("utf-8")))
    except (FileNotFoundError, ValueError):
        return None
    alive = pid_alive(state.supervisor_pid)
    if not alive or process_started(state.supervisor_pid) != state.supervisor_started:
        return None
    return state
