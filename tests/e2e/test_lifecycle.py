"""``timkit up``/``down`` and the supervisor, on a federation of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.federation import Federation, UpFailed, running, timkit, write_config
from tests.support.wait import wait_until
from timkit.core.process import free_port


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """One Messenger-Service, so that crashing it disturbs no other test."""
    with running(write_config(tmp_path_factory.mktemp("solo"), services=1)) as federation:
        yield federation


def test_crashed_homeserver_is_restarted_by_the_supervisor(solo: Federation) -> None:
    old_pid = solo.component("homeserver")["pid"]
    assert isinstance(old_pid, int)
    psutil.Process(old_pid).kill()

    def restarted() -> bool:
        now = solo.component("homeserver")
        return now["pid"] not in (None, old_pid) and now["healthy"] is True

    wait_until(restarted, "the homeserver to come back")
    component = solo.component("homeserver")
    assert component["restarts"] == 1
    log = Path(str(solo.status()["data_dir"])) / "logs" / "supervisor.log"
    assert "restart 1/5" in log.read_text("utf-8")


def test_down_leaves_no_process_behind(tmp_path: Path) -> None:
    config = write_config(tmp_path, services=1)
    with running(config) as federation:
        pids = federation.pids()
        # supervisor, fhir-directory, directory (FHIR-Proxy), idp, mailbox, pushreceiver, push,
        # registration, proxy, homeserver
        assert len(pids) == 10

        result = timkit(config, "down")
        assert "stopped 10 processes" in result.stdout
        assert not [
            p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
        ]
        data_dir = str(tmp_path / "var")
        leftovers = [
            p.info["pid"]
            for p in psutil.process_iter(["pid", "cmdline"])
            if any(data_dir in part for part in (p.info["cmdline"] or []))
        ]
        assert leftovers == []
        assert federation.status()["running"] is False
        assert "not running" in timkit(config, "down").stdout


def test_port_in_use_fails_naming_the_key(tmp_path: Path) -> None:
    import socket

    config = write_config(tmp_path, services=1)
    text = config.read_text("utf-8")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        config.write_text(
            text.replace("forward_proxy_port = ", f"forward_proxy_port = {port}#"), "utf-8"
        )
        result = timkit(config, "up", check=False)
    assert result.returncode == 2
    assert "messenger_services.0.forward_proxy_port" in result.stderr
    assert f"port {port}" in result.stderr


def _crashing_config(tmp_path: Path) -> Path:
    """One service whose Synapse keeps crashing: its PostgreSQL does not exist."""
    nowhere = f"postgresql://synapse@127.0.0.1:{free_port()}/synapse"  # no server listens
    config = write_config(tmp_path, services=1, database=[nowhere])
    config.write_text(
        config.read_text("utf-8").replace("[runtime]\n", "[runtime]\nmax_restarts = 1\n"), "utf-8"
    )
    return config


def _processes_of(data_dir: Path) -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if str(data_dir) in " ".join(p.info["cmdline"] or [])
    ]


def test_component_that_keeps_crashing_fails_up_with_its_log_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    config = _crashing_config(tmp_path)
    result = timkit(config, "up", check=False)
    assert result.returncode == 1
    assert "homeserver@praxis-sonnenschein.tim.test keeps crashing" in result.stderr
    assert "Connection refused" in result.stderr  # the tail of Synapse's own log
    assert not _processes_of(tmp_path / "var")


def test_the_shared_fixture_reports_a_failed_up_with_its_logs_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """``tests.support.federation.running``: what a half-way ``up`` started is stopped, and
    the error carries ``up``'s output and the data directory's logs."""
    config = _crashing_config(tmp_path)
    with pytest.raises(UpFailed) as failed, running(config):
        pytest.fail("the block must not run when up fails")
    message = str(failed.value)
    assert "timkit up exited 1" in message
    assert "keeps crashing" in message
    assert f"lines of {tmp_path / 'var' / 'logs' / 'supervisor.log'}" in message
    assert not _processes_of(tmp_path / "var")
    assert "not running" in timkit(config, "down").stdout
