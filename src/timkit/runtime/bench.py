"""``timkit bench up``: time from ``up`` to all healthy, and memory per Synapse.

Each run uses a fresh temporary data directory and free ports, so it never touches the
user's federation. The baseline, measured in the same run, is the same Synapses started
directly (no supervisor, no proxy, config already generated): what ``up`` adds is the
difference.
"""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from timkit.core.machine import describe_machine
from timkit.core.process import free_port
from timkit.core.tls import client_ssl_context
from timkit.runtime import control
from timkit.runtime.config import (
    DirectorySettings,
    MessengerServiceConfig,
    RuntimeSettings,
    TimkitConfig,
)
from timkit.runtime.layout import Layout


@dataclass(frozen=True)
class UpBenchResult:
    """Seconds to healthy and RSS (MiB) per Synapse, plus the direct-start baseline."""

    services: int
    cold_up: float
    warm_up: list[float]
    baseline: list[float]
    synapse_rss_mib: list[float]

    def markdown(self) -> str:
        """The result as a Markdown section for ``docs/benchmarks.md``."""
        warm = statistics.median(self.warm_up)
        base = statistics.median(self.baseline)
        rss = ", ".join(f"{r:.0f}" for r in self.synapse_rss_mib)
        return "\n".join(
            [
                f"### `timkit bench up` — {dt.date.today().isoformat()}",
                "",
                f"Machine: {describe_machine()}",
                "",
                "| measurement | value |",
                "|---|---|",
                f"| services | {self.services} |",
                f"| cold `up` (new PKI, new databases) to all healthy | {self.cold_up:.2f} s |",
                f"| warm `up` to all healthy, median of {len(self.warm_up)} | {warm:.2f} s |",
                f"| warm `up` runs | {', '.join(f'{t:.2f}' for t in self.warm_up)} s |",
                f"| baseline: the same Synapses started directly, median of "
                f"{len(self.baseline)} | {base:.2f} s |",
                f"| overhead of `up` over the baseline | {warm - base:+.2f} s |",
                f"| RSS per Synapse after `up` | {rss} MiB |",
            ]
        )


def _bench_config(data_dir: Path, services: int) -> TimkitConfig:
    template = TimkitConfig().messenger_services
    entries = tuple(
        MessengerServiceConfig(
            domain=template[i].domain if i < len(template) else f"org{i}.tim.test",
            organisation=f"Bench {i}",
            port=free_port(),
            forward_proxy_port=free_port(),
        )
        for i in range(services)
    )
    return TimkitConfig(
        data_dir=data_dir,
        runtime=RuntimeSettings(log_level="WARNING", control_port=free_port()),
        directory=DirectorySettings(port=free_port(), proxy_port=free_port()),
        messenger_services=entries,
    )


def _baseline(config: TimkitConfig) -> float:
    """Seconds until the config's Synapses, started directly, all answer ``/health``."""
    layout = Layout(config.data_dir)
    ssl_context = client_ssl_context(layout.ca_cert)
    begin = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(layout.service_dir(s.domain) / "synapse" / "homeserver.yaml"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for s in config.messenger_services
    ]
    try:
        pending = {
            f"https://{config.runtime.bind}:{s.port}/health" for s in config.messenger_services
        }
        with httpx.Client(verify=ssl_context, timeout=1.0) as client:
            while pending:
                for url in list(pending):
                    try:
                        if client.get(url).is_success:
                            pending.discard(url)
                    except httpx.HTTPError:
                        pass
                time.sleep(0.05)
        return time.monotonic() - begin
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def bench_up(*, services: int = 2, runs: int = 3) -> UpBenchResult:
    """Measure cold and warm ``up`` against the direct-start baseline."""
    with tempfile.TemporaryDirectory(prefix="timkit-bench-") as tmp:
        config = _bench_config(Path(tmp) / "var", services)
        cold = control.up(config)
        rss = [
            psutil.Process(c.pid).memory_info().rss / 2**20
            for c in cold.state.components
            if c.kind == "homeserver" and c.pid is not None
        ]
        control.down(config)
        warm: list[float] = []
        baseline: list[float] = []
        for _ in range(runs):
            baseline.append(_baseline(config))
            warm.append(control.up(config).seconds)
            control.down(config)
        return UpBenchResult(services, cold.seconds, warm, baseline, rss)
