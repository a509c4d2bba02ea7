"""The benchmark harness: one percentile definition, rates, and real child processes."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import psutil
import pytest

from timkit.bench.harness import BenchError, Latency, Rate, percentile, processes
from timkit.core.process import free_port


def test_percentile_interpolates_linearly_between_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]  # sorted: 1 2 3 4, positions 0..3
    assert percentile(samples, 0.0) == 1.0
    assert percentile(samples, 1.0) == 4.0
    assert percentile(samples, 0.5) == 2.5  # position 1.5
    assert percentile(samples, 0.99) == pytest.approx(3.97)  # position 2.97
    assert percentile([7.0], 0.99) == 7.0


def test_p50_is_the_median_for_odd_and_even_counts() -> None:
    for samples in ([5.0, 1.0, 9.0], [5.0, 1.0, 9.0, 2.0], [float(i % 17) for i in range(200)]):
        assert percentile(samples, 0.5) == statistics.median(samples)


def test_percentile_refuses_no_samples_and_quantiles_outside_0_1() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 1.5)


def test_latency_of_samples() -> None:
    latency = Latency.of([float(i) for i in range(1, 101)])  # 1 … 100 ms
    assert latency.p50 == 50.5
    assert latency.p99 == pytest.approx(99.01)
    assert latency.max == 100.0
    assert latency.count == 100
    assert latency.text() == "50.50 / 99.01 ms"


def test_rate_per_second_and_cpu_per_request() -> None:
    rate = Rate(done=90, failed=10, seconds=2.0, cpu={"relay": 0.5})
    assert rate.per_second == 45.0
    assert rate.cpu_ms == {"relay": 5.0}  # 500 ms over 100 requests, failed ones included
    assert Rate(0, 0, 0.0).per_second == 0.0


def test_processes_wait_until_healthy_and_stop_all(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with processes(tmp_path / "logs") as children:
        children.start(
            "web",
            argv,
        )
        waited = children.wait_healthy("web", f"http://127.0.0.1:{port}/", timeout=30)
        pid = children.running["web"].pid
        assert waited >= 0
    assert children.running == {}
    assert not psutil.pid_exists(pid)
    assert (tmp_path / "logs" / "web.log").exists()


def test_a_process_that_exits_fails_the_wait_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('cannot start: port taken'); sys.exit(3)"]
    with processes(tmp_path / "logs") as children:
        children.start("broken", argv)
        with pytest.raises(BenchError, match="broken exited with 3") as raised:
            children.wait_healthy("broken", f"http://127.0.0.1:{free_port()}/", timeout=30)
    assert "cannot start: port taken" in str(raised.value)


def test_a_process_that_never_gets_ready_fails_the_wait(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with processes(tmp_path / "logs") as children:
        children.start("web", argv)
        with pytest.raises(BenchError, match="web not healthy within 1 s"):
            children.wait_healthy(
                "web", f"http://127.0.0.1:{port}/", ready=lambda _body: False, timeout=1
            )
