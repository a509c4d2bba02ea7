"""``timkit up``, ``down``, ``status`` and the supervisor process they control.

``up`` writes the plan of the shared components, starts a detached supervisor
(``timkit supervise``, which also serves the control API and brings back every Messenger-Service
provisioned before), waits until the shared components are healthy, onboards the configured
organisations through the Registrierungs-Dienst (:mod:`timkit.runtime.onboarding`: AF_10103 at
the IDP stand-in, Org-Admin account, AF_10060 for each service; the RD provisions through the
control API) and waits until the supervisor's state file shows every component healthy.
``down`` signals the supervisor, which stops its children; whatever survives a grace period
is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timkit.core.errors import TimkitError
from timkit.core.http import async_client
from timkit.core.logging import setup_logging
from timkit.core.process import pid_alive, signal_quietly
from timkit.runtime.backend import EmbeddedBackend, component_names, read_records
from timkit.runtime.config import TimkitConfig, check_ports_free
from timkit.runtime.control_api import start_control_api
from timkit.runtime.layout import Layout
from timkit.runtime.onboarding import Progress, ensure_rd_provider, onboard
from timkit.runtime.plan import (
    Plan,
    build_plan,
    endpoints,
    idp_url,
    mailbox_url,
    registration_url,
)
from timkit.runtime.push_chain import gateway_url, receiver_url
from timkit.runtime.services import (
    ServiceControl,
    control_url,
    ensure_control_token,
)
from timkit.runtime.supervisor import Phase, Supervisor, SupervisorState, probe, read_state

logger = logging.getLogger(__name__)

POLL = 0.1
DOWN_TIMEOUT = 30.0


class RuntimeFailure(TimkitError):
    """The local federation could not be started or stopped."""

    def __init__(self, message: str) -> None:
        super().__init__(500, "TIMKIT_RUNTIME", message)


@dataclass(frozen=True)
class UpResult:
    """What ``up`` did: ``started`` is false when the federation was already running."""

    started: bool
    state: SupervisorState
    seconds: float


def running_state(config: TimkitConfig) -> SupervisorState | None:
    """The live supervisor's state, or ``None`` if the federation is not running."""
    return read_state(Layout(config.data_dir).state_file)


def up(
    config: TimkitConfig, *, timeout: float | None = None, progress: Progress | None = None
) -> UpResult:
    """Start the federation in the background and wait until every component is healthy.

    Once the shared components are healthy, the configured organisations are onboarded
    through the Registrierungs-Dienst (:func:`timkit.runtime.onboarding.onboard`), which
    provisions their Messenger-Services through the control API; services provisioned
    earlier come back with the supervisor.

    Args:
        config: the federation's configuration.
        timeout: seconds for everything (default ``runtime.startup_timeout``).
        progress: receives one line per onboarding step (default: discarded).

    Raises:
        ConfigError: when a configured port is taken.
        RuntimeFailure: when a component fails, onboarding fails or something is not healthy
            in time; the components started so far are stopped again.
    """
    begin = time.monotonic()
    current = running_state(config)
    if current is not None:
        return UpResult(started=False, state=current, seconds=0.0)
    check_ports_free(config)
    layout = Layout(config.data_dir)
    plan = build_plan(config)
    ensure_rd_provider(config)
    layout.run.mkdir(parents=True, exist_ok=True)
    ensure_control_token(layout)
    layout.plan_file.write_text(plan.model_dump_json(indent=2), "utf-8")
    layout.logs.mkdir(parents=True, exist_ok=True)
    with open(layout.supervisor_log, "ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "timkit", "supervise", "--plan", str(layout.plan_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = begin + (timeout or config.runtime.startup_timeout)
    try:
        expected = {c.name for c in plan.components}
        _wait_healthy(layout, supervisor, expected, begin, deadline)

        def check(failed_domain: str | None) -> None:
            _check_supervisor(supervisor, layout)
            _check_failed(read_state(layout.state_file), supervisor)
            if failed_domain is not None:  # rolled back by the RD already: name the logs
                for name in reversed(component_names(failed_domain)):
                    log_file = layout.log_file(name)
                    if log_file.exists():
                        raise RuntimeFailure(_failure_message(name, str(log_file)))

        try:
            asyncio.run(
                onboard(config, deadline=deadline, progress=progress or _quiet, check=check)
            )
        except TimkitError as e:
            if isinstance(e, RuntimeFailure):
                raise
            raise RuntimeFailure(
                f"onboarding through the Registrierungs-Dienst failed: {e.message};"
                f" logs in {layout.logs}"
            ) from e
        for service in config.messenger_services:
            expected.update(component_names(service.domain))
        state = _wait_healthy(layout, supervisor, expected, begin, deadline)
    except BaseException:
        down(config)
        raise
    return UpResult(started=True, state=state, seconds=time.monotonic() - begin)


def _quiet(_line: str) -> None:
    pass


def _check_failed(state: SupervisorState | None, supervisor: subprocess.Popen[bytes]) -> None:
    if state is None or state.supervisor_pid != supervisor.pid:
        return
    failed = [c for c in state.components if c.phase is Phase.FAILED]
    if failed:
        raise RuntimeFailure(_failure_message(failed[0].name, failed[0].log_file))


def _wait_healthy(
    layout: Layout,
    supervisor: subprocess.Popen[bytes],
    expected: set[str],
    begin: float,
    deadline: float,
) -> SupervisorState:
    """Poll the state file until every ``expected`` component (and all others) is healthy.

    Raises:
        RuntimeFailure: a component failed, the supervisor died, or the deadline passed.
    """
    while True:
        state = read_state(layout.state_file)
        if state is not None and state.supervisor_pid == supervisor.pid:
            _check_failed(state, supervisor)
            present = {c.name for c in state.components}
            if expected <= present and all(c.healthy for c in state.components):
                return state
        _check_supervisor(supervisor, layout)
        if time.monotonic() > deadline:
            pending = [c.name for c in state.components if not c.healthy] if state else []
            raise RuntimeFailure(
                f"not healthy after {deadline - begin:.0f}s: {', '.join(pending) or 'supervisor'};"
                f" logs in {layout.logs}"
            )
        time.sleep(POLL)


def _check_supervisor(supervisor: subprocess.Popen[bytes], layout: Layout) -> None:
    if supervisor.poll() is not None:
        raise RuntimeFailure(
            f"the supervisor exited with code {supervisor.returncode}; see {layout.supervisor_log}"
        )


def _failure_message(name: str, log_file: str) -> str:
    tail = ""
    with contextlib.suppress(OSError):
        lines = Path(log_file).read_text("utf-8", errors="replace").splitlines()
        tail = "\n".join(lines[-15:])
    return f"{name} keeps crashing; last lines of {log_file}:\n{tail}"


def down(config: TimkitConfig) -> list[int]:
    """Stop the federation: SIGTERM to the supervisor, SIGKILL to whatever outlives it.

    Returns:
        The pids that were running (supervisor first); empty if nothing was running.
    """
    layout = Layout(config.data_dir)
    state = read_state(layout.state_file)
    if state is None:
        layout.state_file.unlink(missing_ok=True)
        return []
    pids = [state.supervisor_pid, *(c.pid for c in state.components if c.pid is not None)]
    signal_quietly(state.supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + DOWN_TIMEOUT
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(POLL)
    survivors = [p for p in pids if pid_alive(p)]
    if survivors:
        logger.warning("killing processes that outlived the supervisor: %s", survivors)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # The supervisor leads its own session and process group; its children are in it.
            os.killpg(state.supervisor_pid, signal.SIGKILL)
        for pid in survivors:
            signal_quietly(pid, signal.SIGKILL)
    layout.state_file.unlink(missing_ok=True)
    return pids


async def _live_health(urls: list[str], ca_cert: Path) -> list[bool]:
    async with async_client(ca_cert, timeout=2.0) as client:
        return list(await asyncio.gather(*(probe(client, url) for url in urls)))


async def _live_services(config: TimkitConfig) -> list[dict[str, Any]] | None:
    """The control API's service list, or ``None`` when it cannot be asked."""
    try:
        async with ServiceControl.for_config(config, timeout=5.0) as control:
            return [s.model_dump() for s in await control.services()]
    except TimkitError:
        return None


def status(config: TimkitConfig) -> dict[str, Any]:
    """The status document printed by ``timkit status --json`` (health probed live).

    ``components`` lists every supervised process, the Messenger-Services' included;
    ``services`` comes from the control API while the federation runs (with ``phase`` and
    ``healthy``), else from the services' persisted records. ``portal_url`` is the
    Registrierungs-Dienst, ``idp_url`` the IDP stand-in, ``mailbox_url`` the mailbox page,
    ``push_gateway_url`` the Push-Gateway (pushers append ``/_matrix/push/v1/notify``),
    ``push_receiver_url`` the push receiver's page and ``demo_admins`` the file with the demo
    Org-Admins' credentials.
    """
    layout = Layout(config.data_dir)
    state = read_state(layout.state_file)
    components: list[dict[str, Any]] = []
    services: list[dict[str, Any]] | None = None
    if state is not None:
        healthy = asyncio.run(
            _live_health([c.health_url for c in state.components], layout.ca_cert)
        )
        for component, ok in zip(state.components, healthy, strict=True):
            components.append(
                {
                    "name": component.name,
                    "kind": component.kind,
                    "url": component.url,
                    "healthy": ok and component.pid is not None,
                    "pid": component.pid,
                    "phase": component.phase.value,
                    "restarts": component.restarts,
                    "log_file": component.log_file,
                }
            )
        services = asyncio.run(_live_services(config))
    if services is None:
        services = [endpoints(config, r).model_dump() for r in read_records(layout)]
    return {
        "data_dir": str(config.data_dir),
        "ca_cert": str(layout.ca_cert),
        "running": state is not None,
        "supervisor_pid": state.supervisor_pid if state else None,
        "control_url": control_url(config),
        "portal_url": registration_url(config),
        "idp_url": idp_url(config),
        "mailbox_url": mailbox_url(config),
        "push_gateway_url": gateway_url(config),
        "push_receiver_url": receiver_url(config),
        "demo_admins": str(layout.demo_admins),
        "components": components,
        "services": services,
    }


def supervise(plan_file: Path) -> int:
    """Body of the detached supervisor process: run the plan until SIGTERM.

    Besides the plan's shared components it serves the control API (the embedded
    provisioning backend) and restarts every Messenger-Service recorded in the data directory.

    Returns:
        0 after a clean stop, 3 when another supervisor holds the data directory's lock,
        4 when the control API's port cannot be bound.
    """
    plan = Plan.model_validate_json(plan_file.read_text("utf-8"))
    setup_logging(plan.log_level)
    plan.lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(plan.lock_file, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.error("another supervisor is running for %s", plan.data_dir)
            return 3
        return asyncio.run(_supervise(plan))


async def _supervise(plan: Plan) -> int:
    config = plan.config
    supervisor = Supervisor(
        [c.spec() for c in plan.components],
        plan.state_file,
        ca_cert=plan.ca_cert,
        policy=plan.policy(),
        health_interval=plan.health_interval,
    )
    backend = EmbeddedBackend(config, supervisor)
    token = ensure_control_token(Layout(config.data_dir))
    try:
        runner = await start_control_api(
            backend, token, config.runtime.bind, config.runtime.control_port
        )
    except OSError as e:
        logger.error("cannot serve the control API on port %d: %s", config.runtime.control_port, e)
        return 4
    try:
        await backend.restore()
        logger.info("supervising %d shared components in %s", len(plan.components), plan.data_dir)
        await supervisor.run()
    finally:
        await runner.cleanup()
    return 0
