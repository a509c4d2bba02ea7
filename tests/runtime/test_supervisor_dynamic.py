"""Components join and leave a running supervisor; the state file follows every change."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psutil
import pytest

from tests.runtime.test_supervisor import _http_server, _state
from tests.support.wait import async_wait_until
from timkit.core.errors import TimkitError
from timkit.runtime.supervisor import Phase, ProcessSpec, RestartPolicy, Supervisor


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
