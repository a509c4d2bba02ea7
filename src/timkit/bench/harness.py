"""What every benchmark shares: child processes, health polling, latency and rate figures.

Percentiles have one definition here (:func:`percentile`): linear interpolation between the
two closest ranks (Hyndman and Fan's type 7, numpy's default), so p50 is the median.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from timkit.core.http import sync_client
from timkit.core.process import die_with_parent

POLL_INTERVAL = 0.05
"""Seconds between two health probes."""
STARTUP_TIMEOUT = 120.0
"""Seconds a benchmarked process may take to become healthy."""


class BenchError(RuntimeError):
    """The benchmark could not run (a process failed, a request was refused)."""


# -- figures ---------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 ≤ q ≤ 1) of ``samples``, linearly interpolated between ranks.

    With the samples sorted as ``x[0] ≤ … ≤ x[n-1]``, the quantile sits at position
    ``h = (n - 1) * q`` and is ``x[⌊h⌋] + (h - ⌊h⌋) * (x[⌊h⌋ + 1] - x[⌊h⌋])``. ``q = 0.5`` is
    the median, ``q = 1`` the maximum.

    Raises:
        ValueError: when ``samples`` is empty or ``q`` is outside [0, 1].
    """
    if not samples:
        raise ValueError("no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


@dataclass(frozen=True)
class Latency:
    """p50, p99 and maximum in milliseconds over ``count`` samples (see :func:`percentile`)."""

    p50: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latency:
        """From raw samples in milliseconds (at least one)."""
        return cls(percentile(samples, 0.5), percentile(samples, 0.99), max(samples), len(samples))

    def text(self) -> str:
        """``p50 / p99 ms``."""
        return f"{self.p50:.2f} / {self.p99:.2f} ms"


@dataclass(frozen=True)
class Rate:
    """Requests that completed (``done``) or failed in a measured window of ``seconds``.

    ``cpu`` maps a process's label to the CPU seconds (user + system) it spent in the window.
    """

    done: int
    failed: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        """Completed requests per second of the window."""
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> dict[str, float]:
        """Per process: CPU milliseconds per request (completed or failed)."""
        requests = max(1, self.done + self.failed)
        return {name: spent * 1000 / requests for name, spent in self.cpu.items()}


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of ``pid`` (None: this process) so far."""
    times = (psutil.Process(pid) if pid is not None else psutil.Process()).cpu_times()
    return float(times.user + times.system)


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


# -- processes --------------------------------------------------------------------------------


@dataclass
class Processes:
    """Child processes of a benchmark, stopped together by :meth:`stop_all`.

    Each child gets SIGTERM when the benchmark dies (:func:`timkit.core.process.die_with_parent`).
    With ``logs`` set, each writes to ``<logs>/<name>.log``; without, it inherits the
    benchmark's stdout and stderr.
    """

    logs: Path | None = None
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` as ``name``."""
        if self.logs is None:
            process = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
            )
        else:
            self.logs.mkdir(parents=True, exist_ok=True)
            with open(self.logs / f"{name}.log", "ab") as log:
                process = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
        self.running[name] = process
        return process

    def tail(self, name: str, lines: int = 30) -> str:
        """The last ``lines`` of ``name``'s log ('' without logs)."""
        if self.logs is None:
            return ""
        path = self.logs / f"{name}.log"
        text = path.read_text("utf-8", "replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, name: str) -> None:
        """Stop ``name`` (SIGTERM, SIGKILL after 30 s)."""
        _stop([self.running.pop(name)])

    def stop_all(self) -> None:
        """Stop every child (SIGTERM, SIGKILL after 30 s)."""
        processes = list(self.running.values())
        self.running.clear()
        _stop(processes)

    def wait_healthy(
        self,
        name: str,
        url: str,
        *,
        ca_cert: Path | None = None,
        ready: Callable[[bytes], bool] = lambda _body: True,
        timeout: float = STARTUP_TIMEOUT,
    ) -> float:
        """Poll ``url`` every :data:`POLL_INTERVAL` until it answers 200 and ``ready(body)``.

        ``https`` URLs are verified against ``ca_cert`` (the system store when None).

        Returns:
            the seconds it took.

        Raises:
            BenchError: when ``name`` exits or is not ready within ``timeout`` seconds.
        """
        process = self.running[name]
        begin = time.monotonic()
        with sync_client(ca_cert, timeout=2.0) as client:
            while time.monotonic() - begin < timeout:
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get(url)
                    if response.status_code == 200 and ready(response.content):
                        return time.monotonic() - begin
                if process.poll() is not None:
                    raise BenchError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
                time.sleep(POLL_INTERVAL)
        raise BenchError(f"{name} not healthy within {timeout:g} s:\n{self.tail(name)}")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def processes(logs: Path | None = None) -> Iterator[Processes]:
    """:class:`Processes` that are all stopped when the block ends."""
    children = Processes(logs)
    try:
        yield children
    finally:
        children.stop_all()
