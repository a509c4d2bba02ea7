"""``timkit bench up``: time from ``up`` to all healthy, and memory per Synapse.

Each run uses a fresh temporary data directory and free ports, so it never touches the
user's federation. The baseline, measured in the same run, is the same Synapses started
directly (no supervisor, no proxy, no RD): what timkit adds is the difference.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from timkit.bench.harness import percentile, processes, rss
from timkit.bench.machine import report_head
from timkit.core.process import free_port
from timkit.runtime import control
from timkit.runtime.backend import read_records
from timkit.runtime.config import (
    DirectorySettings,
    IdpSettings,
    MailboxSettings,
    MessengerServiceConfig,
    PushSettings,
    RegistrationSettings,
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
        warm = percentile(self.warm_up, 0.5)
        base = percentile(self.baseline, 0.5)
        rss = ", ".join(f"{r:.0f}" for r in self.synapse_rss_mib)
        return "\n".join(
            [
                *report_head("up"),
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


def bench_config(data_dir: Path, services: int) -> TimkitConfig:
    """A federation of ``services`` Messenger-Services in ``data_dir``, all on free ports."""
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
        idp=IdpSettings(port=free_port()),
        mailbox=MailboxSettings(smtp_port=free_port(), http_port=free_port()),
        registration=RegistrationSettings(port=free_port()),
        push=PushSettings(port=free_port(), receiver_port=free_port(), apns_port=free_port()),
        messenger_services=entries,
    )


def _baseline(config: TimkitConfig, timeout: float = 120.0) -> float:
    """Seconds until the config's Synapses, started directly, all answer ``/health``.

    Each is started from the ``homeserver.yaml`` the runtime generated and probed on its own
    loopback port (behind the proxy in the federation).

    Raises:
        BenchError: when one exits or they are not all healthy within ``timeout`` seconds.
    """
    layout = Layout(config.data_dir)
    records = read_records(layout)
    with processes(config.data_dir.parent / "baseline-logs") as children:
        begin = time.monotonic()
        for r in records:
            synapse_yaml = layout.service_dir(r.domain) / "synapse" / "homeserver.yaml"
            children.start(
                r.domain, [sys.executable, "-m", "synapse.app.homeserver", "-c", str(synapse_yaml)]
            )
        for r in records:
            left = max(0.0, timeout - (time.monotonic() - begin))
            url = f"http://{config.runtime.bind}:{r.homeserver_port}/health"
            children.wait_healthy(r.domain, url, timeout=left)
        return time.monotonic() - begin


def bench_up(*, services: int = 2, runs: int = 3) -> UpBenchResult:
    """Measure cold and warm ``up`` against the direct-start baseline."""
    with tempfile.TemporaryDirectory(prefix="timkit-bench-") as tmp:
        config = bench_config(Path(tmp) / "var", services)
        cold = control.up(config)
        synapse_rss = [
            rss(c.pid) / 2**20
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
        return UpBenchResult(services, cold.seconds, warm, baseline, synapse_rss)
