"""``timkit bench provision``: AF_10060 through the Registrierungs-Dienst.

From the Org-Admin's request to "Synapse running and its domain in the federation list served
by the RD" (:func:`bench_provision`), on a fresh one-service federation in a temporary data
directory (:func:`timkit.bench.up.bench_config`). The baseline, measured in the same run, is
the same kind of Synapse started directly with ``python -m timkit.homeserver``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from timkit.bench.harness import percentile, processes
from timkit.bench.machine import report_head
from timkit.bench.up import bench_config
from timkit.core import jwt
from timkit.core.config import dump_toml
from timkit.core.http import async_client
from timkit.core.process import free_port
from timkit.core.tls import LOOPBACK_NAMES, LocalPKI
from timkit.homeserver.config import HomeserverConfig
from timkit.runtime import control
from timkit.runtime.config import TimkitConfig
from timkit.runtime.layout import Layout
from timkit.runtime.onboarding import RdClient, read_admins
from timkit.runtime.plan import registration_url

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
        p50 = percentile(self.runs, 0.5)
        base = percentile(self.baseline, 0.5)
        return "\n".join(
            [
                *report_head("provision"),
                "| measurement | value |",
                "|---|---|",
                f"| AF_10060: `POST /api/v1/services` → Synapse running and its domain in the "
                f"list served by the RD, p50 of {len(self.runs)} | **{p50:.2f} s** |",
                f"| runs | {', '.join(f'{t:.2f}' for t in self.runs)} s |",
                f"| … of which until the RD reports `active`, p50 | "
                f"{percentile(self.active, 0.5):.2f} s |",
                f"| baseline: the same Synapse (fresh data directory) started directly with "
                f"`python -m timkit.homeserver`, p50 of {len(self.baseline)} | {base:.2f} s |",
                f"| overhead of AF_10060 over the baseline | {p50 - base:+.2f} s |",
                f"| deprovisioning until the domain left the RD's list and the service is "
                f"deleted, p50 | {percentile(self.deprovision, 0.5):.2f} s |",
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
    with processes(home / "logs") as children:
        begin = time.monotonic()
        children.start(
            "homeserver", [sys.executable, "-m", "timkit.homeserver", "--config", str(config_file)]
        )
        children.wait_healthy("homeserver", f"{url}/health", ca_cert=layout.ca_cert)
        return time.monotonic() - begin


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
