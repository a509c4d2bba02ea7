"""``timkit bench up`` and ``timkit bench provision``.

``bench up``: time from ``up`` to all healthy, and memory per Synapse. ``bench provision``:
AF_10060 through the Registrierungs-Dienst, from the Org-Admin's request to "Synapse running
and its domain in the federation list served by the RD" (:func:`bench_provision`).

Each run uses a fresh temporary data directory and free ports, so it never touches the
user's federation. The baseline, measured in the same run, is the same Synapses started
directly (no supervisor, no proxy, no RD): what timkit adds is the difference.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from timkit.core import jwt
from timkit.core.config import dump_toml
from timkit.core.http import async_client
from timkit.core.machine import describe_machine
from timkit.core.process import free_port
from timkit.core.tls import LOOPBACK_NAMES, LocalPKI, client_ssl_context
from timkit.homeserver.config import HomeserverConfig
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
from timkit.runtime.onboarding import RdClient, read_admins
from timkit.runtime.plan import registration_url


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
        RuntimeError: when they are not all healthy within ``timeout`` seconds.
    """
    layout = Layout(config.data_dir)
    records = read_records(layout)
    begin = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(layout.service_dir(r.domain) / "synapse" / "homeserver.yaml"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for r in records
    ]
    try:
        pending = {f"http://{config.runtime.bind}:{r.homeserver_port}/health" for r in records}
        with httpx.Client(timeout=1.0) as client:
            while pending:
                if time.monotonic() - begin > timeout:
                    raise RuntimeError(f"baseline Synapses not healthy: {sorted(pending)}")
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
        config = bench_config(Path(tmp) / "var", services)
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


# -- timkit bench provision ------------------------------------------------------------------

BENCH_DOMAIN = "bench-provision.tim.test"
BASELINE_DOMAIN = "bench-baseline.tim.test"
PROVISION_POLL = 0.05


@dataclass(frozen=True)
class ProvisionBenchResult:
    """AF_10060 seconds per run (request → running + listed by the RD) and the baseline."""

    runs: list[float]
    active: list[float]
    baseline: list[float]
    deprovision: list[float]

    def markdown(self) -> str:
        """The result as a Markdown section for ``docs/benchmarks.md``."""
        p50 = statistics.median(self.runs)
        base = statistics.median(self.baseline)
        return "\n".join(
            [
                f"### `timkit bench provision` — {dt.date.today().isoformat()}",
                "",
                f"Machine: {describe_machine()}",
                "",
                "| measurement | value |",
                "|---|---|",
                f"| AF_10060: `POST /api/v1/services` → Synapse running and its domain in the "
                f"list served by the RD, p50 of {len(self.runs)} | **{p50:.2f} s** |",
                f"| runs | {', '.join(f'{t:.2f}' for t in self.runs)} s |",
                f"| … of which until the RD reports `active`, p50 | "
                f"{statistics.median(self.active):.2f} s |",
                f"| baseline: the same Synapse (fresh data directory) started directly with "
                f"`python -m timkit.homeserver`, p50 of {len(self.baseline)} | {base:.2f} s |",
                f"| overhead of AF_10060 over the baseline | {p50 - base:+.2f} s |",
                f"| deprovisioning until the domain left the RD's list and the service is "
                f"deleted, p50 | {statistics.median(self.deprovision):.2f} s |",
            ]
        )


def _baseline_homeserver(config: TimkitConfig, home: Path) -> float:
    """Seconds until a fresh Synapse, started directly by its launcher, answers ``/health``."""
    layout = Layout(config.data_dir)
    names = [BASELINE_DOMAIN, *LOOPBACK_NAMES]
    cert = LocalPKI(layout.pki).ensure_server_cert(BASELINE_DOMAIN, names)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port = free_port()
    url = f"https://{config.runtime.bind}:{port}"
    homeserver = HomeserverConfig(
        server_name=BASELINE_DOMAIN,
        bind=config.runtime.bind,
        port=port,
        public_baseurl=url + "/",
        data_dir=home / "synapse",
        tls_cert=cert.cert,
        tls_key=cert.key,
        federation_ca=layout.ca_cert,
        relaxed_rate_limits=True,
        log_level=config.runtime.log_level,
    )
    config_file = home / "homeserver.toml"
    dump_toml(homeserver, config_file)
    begin = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "timkit.homeserver", "--config", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(verify=client_ssl_context(layout.ca_cert), timeout=1.0) as client:
            while True:
                try:
                    if client.get(f"{url}/health").is_success:
                        return time.monotonic() - begin
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"the baseline Synapse exited with {proc.returncode}")
                time.sleep(PROVISION_POLL)
    finally:
        proc.terminate()
        proc.wait(30)


async def _listed(http: httpx.AsyncClient, url: str, token: str) -> set[str]:
    response = await http.get(f"{url}/federation", headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        return set()
    payload = json.loads(jwt.b64url_decode(response.text.split(".")[1]))
    return {entry["domain"] for entry in payload["domainList"]}


async def _provision_runs(config: TimkitConfig, runs: int) -> tuple[list[float], ...]:
    layout = Layout(config.data_dir)
    url = registration_url(config)
    proxies_token = layout.proxies_token.read_text("utf-8").strip()
    (admin,) = read_admins(layout).values()
    totals: list[float] = []
    actives: list[float] = []
    removals: list[float] = []
    async with async_client(layout.ca_cert, timeout=30.0) as http:
        rd = RdClient(url, http)
        rd.token = admin.session
        for _ in range(runs):
            begin = time.monotonic()
            await rd.provision(BENCH_DOMAIN)
            active_at: float | None = None
            while True:
                if active_at is None:
                    current = await rd.service(BENCH_DOMAIN)
                    assert current is not None
                    if current["state"] == "failed":
                        raise RuntimeError(f"provisioning failed: {current['error']}")
                    if current["state"] == "active":
                        active_at = time.monotonic() - begin
                if active_at is not None and BENCH_DOMAIN in await _listed(
                    http, url, proxies_token
                ):
                    break
                await asyncio.sleep(PROVISION_POLL)
            totals.append(time.monotonic() - begin)
            actives.append(active_at)
            begin = time.monotonic()
            await rd.deprovision(BENCH_DOMAIN)
            while True:
                current = await rd.service(BENCH_DOMAIN)
                gone = BENCH_DOMAIN not in await _listed(http, url, proxies_token)
                if gone and current is not None and current["state"] == "deleted":
                    break
                await asyncio.sleep(PROVISION_POLL)
            removals.append(time.monotonic() - begin)
    return totals, actives, removals


def bench_provision(*, runs: int = 10) -> ProvisionBenchResult:
    """Measure AF_10060 through the RD of a fresh local federation against the baseline.

    One run: the demo Org-Admin's ``POST /api/v1/services``, then polling (every 50 ms)
    until the RD reports the service ``active`` and its ``GET /federation`` lists the domain;
    the service is deprovisioned between runs. The baseline starts the same kind of Synapse
    (fresh data directory) directly, once per run.
    """
    with tempfile.TemporaryDirectory(prefix="timkit-bench-") as tmp:
        config = bench_config(Path(tmp) / "var", 1)
        control.up(config)
        try:
            totals, actives, removals = asyncio.run(_provision_runs(config, runs))
            baseline = [_baseline_homeserver(config, Path(tmp) / "baseline") for _ in range(runs)]
        finally:
            control.down(config)
        return ProvisionBenchResult(totals, actives, baseline, removals)
