"""The supervisor with real child processes: health, restarts with back-off, clean stop;
components join and leave a running supervisor and the state file follows every change."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from tests.support.wait import async_wait_until
from timkit.core.errors import TimkitError
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


# -- components join and leave a running supervisor ------------------------------------------


def _names(state_file: Path) -> list[str]:
    return [c.name for c in _state(state_file).components]


async def test_add_starts_and_watches_remove_stops_and_forgets(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    supervisor = Supervisor(
        [_http_server(tmp_path, "base")],
        state_file,
        policy=RestartPolicy(max_restarts=2, backoff=0.05),
        health_interval=0.05,
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await async_wait_until(lambda: state_file.exists(), "state file")
        extra = _http_server(tmp_path, "extra")
        assert await supervisor.add(extra) is True
        assert await supervisor.add(extra) is False  # same name: unchanged
        assert _names(state_file) == ["base", "extra"]
        await async_wait_until(
            lambda: all(c.healthy for c in _state(state_file).components), "both healthy"
        )
        added = supervisor.component("extra")
        assert added is not None
        assert added.health_url == extra.health_url

        pid = _state(state_file).components[1].pid
        assert pid is not None
        psutil.Process(pid).kill()  # an added component is restarted like the others

        def restarted() -> bool:
            c = _state(state_file).components[1]
            return c.healthy and c.pid != pid and c.restarts == 1

        await async_wait_until(restarted, "restart of the added component")
        pid = _state(state_file).components[1].pid
        assert pid is not None

        assert await supervisor.remove("extra") is True
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert _names(state_file) == ["base"]
        assert supervisor.component("extra") is None
        assert await supervisor.remove("extra") is False
        assert _state(state_file).components[0].healthy
    finally:
        supervisor.request_stop()
        await task
    assert not state_file.exists()
    with pytest.raises(TimkitError, match="stopping"):
        await supervisor.add(_http_server(tmp_path, "late"))


async def test_component_added_before_run_starts_with_it_and_stop_ends_all(
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "state.json"
    supervisor = Supervisor([], state_file, health_interval=0.05)
    await supervisor.add(_http_server(tmp_path, "early"))
    task = asyncio.create_task(supervisor.run())
    await async_wait_until(
        lambda: state_file.exists() and _state(state_file).components[0].healthy, "health"
    )
    await supervisor.add(_http_server(tmp_path, "later"))
    await async_wait_until(
        lambda: all(c.healthy for c in _state(state_file).components), "both healthy"
    )
    pids = [c.pid for c in _state(state_file).components]
    supervisor.request_stop()
    await task
    assert not [p for p in pids if p is not None and psutil.pid_exists(p)]


async def test_removing_a_component_that_ignores_sigterm_kills_it(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    ready = tmp_path / "ignoring-sigterm"
    stubborn = ProcessSpec(
        name="stubborn",
        kind="test",
        argv=(
            sys.executable,
            "-c",
            "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " pathlib.Path(sys.argv[1]).touch(); time.sleep(600)",
            str(ready),
        ),
        url="",
        health_url="http://127.0.0.1:1/",
        log_file=tmp_path / "stubborn.log",
    )
    supervisor = Supervisor([], state_file, health_interval=0.05, stop_timeout=0.5)
    task = asyncio.create_task(supervisor.run())
    try:
        await async_wait_until(lambda: state_file.exists(), "state file")
        await supervisor.add(stubborn)
        component = supervisor.component("stubborn")
        assert component is not None
        assert component.pid is not None
        pid = component.pid
        await async_wait_until(ready.exists, "the child to ignore SIGTERM")
        removal = asyncio.create_task(supervisor.remove("stubborn"))
        await async_wait_until(
            lambda: (
                _state(state_file).components
                and _state(state_file).components[0].phase is Phase.STOPPING
            ),
            "stopping in the state file",
        )
        assert await removal is True
        assert _names(state_file) == []
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        supervisor.request_stop()
        await task
