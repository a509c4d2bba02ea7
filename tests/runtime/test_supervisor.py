"""The supervisor with real child processes: health, restarts with back-off, clean stop."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from tests.support.wait import async_wait_until
from timkit.core.process import free_port, process_started
from timkit.runtime.supervisor import (
    Phase,
    ProcessSpec,
    RestartPolicy,
    Supervisor,
    SupervisorState,
    read_state,
)


def _http_server(tmp_path: Path, name: str = "web") -> ProcessSpec:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return ProcessSpec(
        name=name,
        kind="test",
        argv=(sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)),
        url=url,
        health_url=url + "/",
        log_file=tmp_path / f"{name}.log",
    )


def _state(path: Path) -> SupervisorState:
    state = read_state(path)
    assert state is not None
    return state


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Supervisor, Path, asyncio.Task[None]]]:
    state_file = tmp_path / "state.json"
    supervisor = Supervisor(
        [_http_server(tmp_path)],
        state_file,
        policy=RestartPolicy(max_restarts=2, backoff=0.05),
        health_interval=0.05,
    )
    task = asyncio.create_task(supervisor.run())
    await async_wait_until(
        lambda: state_file.exists() and _state(state_file).components[0].healthy, "health"
    )
    yield supervisor, state_file, task
    supervisor.request_stop()
    await task


async def test_component_becomes_healthy_and_is_recorded(
    running: tuple[Supervisor, Path, asyncio.Task[None]],
) -> None:
    _, state_file, _ = running
    component = _state(state_file).components[0]
    assert component.phase is Phase.HEALTHY
    assert component.pid is not None
    assert psutil.pid_exists(component.pid)
    assert component.restarts == 0


async def test_crashed_component_is_restarted_then_given_up(
    running: tuple[Supervisor, Path, asyncio.Task[None]], tmp_path: Path
) -> None:
    _, state_file, _ = running
    for attempt in (1, 2):
        pid = _state(state_file).components[0].pid
        assert pid is not None
        psutil.Process(pid).kill()

        def back(old: int = pid, n: int = attempt) -> bool:
            c = _state(state_file).components[0]
            return c.healthy and c.pid != old and c.restarts == n

        await async_wait_until(back, f"restart {attempt}")
    pid = _state(state_file).components[0].pid
    assert pid is not None
    psutil.Process(pid).kill()
    await async_wait_until(
        lambda: _state(state_file).components[0].phase is Phase.FAILED, "giving up"
    )
    assert _state(state_file).components[0].pid is None


async def test_stop_terminates_children_and_removes_state(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    specs = [_http_server(tmp_path, "one"), _http_server(tmp_path, "two")]
    supervisor = Supervisor(specs, state_file, health_interval=0.05)
    task = asyncio.create_task(supervisor.run())
    await async_wait_until(
        lambda: state_file.exists() and all(c.healthy for c in _state(state_file).components),
        "health",
    )
    pids = [c.pid for c in _state(state_file).components]
    supervisor.request_stop()
    await task
    assert not state_file.exists()
    assert not [p for p in pids if p is not None and psutil.pid_exists(p)]


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(backoff=0.5, backoff_max=3.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_stale_state_of_a_reused_pid_is_not_taken_for_a_supervisor(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    me = os.getpid()  # alive, but not the process that wrote the state
    stale = SupervisorState(
        supervisor_pid=me,
        supervisor_started=process_started(me) - 3600,
        started_at="2026-01-01T00:00:00+00:00",
        stopping=False,
        components=[],
    )
    state_file.write_text(stale.model_dump_json())
    assert read_state(state_file) is None
    genuine = stale.model_copy(update={"supervisor_started": process_started(me)})
    state_file.write_text(genuine.model_dump_json())
    assert read_state(state_file) == genuine
