"""``timkit bench directory-proxy``: what the FHIR-Proxy costs on top of the FHIR-Directory.

1. A synthetic directory (:mod:`timkit.directory.demo.generate`) behind a real FHIR-Directory
   process and a real FHIR-Proxy process (TLS, as deployed), both on loopback.
2. Added latency: the six typical TI-M client searches sent one client at a time, first
   straight to the directory, then through ``/search`` with a search-accesstoken (p50/p99
   each; the difference of the p50s is the proxy's cost). Baseline in the same run:
   ``GET /health`` on each server.
3. Token issuance over HTTPS: ``POST /token``, ``GET /ti-provider-authenticate`` and
   ``GET /tim-authenticate`` minus the userinfo round trip to a local homeserver stand-in
   (measured separately in the same run).
4. Federation list: regenerating and signing (BP256R1 + ES256) a list of 100,000 domains.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from timkit.bench.directory import (
    SEARCHES,
    BenchClient,
    Samples,
    draw_samples,
    load_synthetic,
    write_directory_config,
)
from timkit.bench.harness import Latency, Processes, percentile
from timkit.bench.machine import report_head
from timkit.core.config import dump_toml
from timkit.core.process import free_port
from timkit.core.tls import LOOPBACK_NAMES, LocalPKI
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.handlers.signed_list import regenerate
from timkit.fhirproxy.service import open_database, token_service
from timkit.fhirproxy.storage.domains import Domain, DomainStore
from timkit.fhirproxy.storage.providers import ProviderStore

USERINFO_SERVER = "bench.tim.test"
BENCH_TELEMATIK_ID = "1-bench-0001"


@dataclass(frozen=True)
class FhirProxyBenchResult:
    """Everything ``timkit bench directory-proxy`` measured."""

    resources: int
    direct: dict[str, Latency]
    proxied: dict[str, Latency]
    health_direct: Latency
    health_proxied: Latency
    token: Latency
    provider_token: Latency
    tim_authenticate: Latency
    userinfo: Latency
    domains: int
    regenerate_seconds: float

    def added_p50(self) -> dict[str, float]:
        """Per search: proxied p50 minus direct p50, in milliseconds."""
        return {name: self.proxied[name].p50 - self.direct[name].p50 for name in self.direct}

    def markdown(self) -> str:
        """The result as a Markdown section for ``docs/benchmarks.md``."""
        added = self.added_p50()
        lines = [
            *report_head("directory-proxy"),
            f"{self.resources:,} synthetic resources; one client, keep-alive; directory over "
            "HTTP on loopback, FHIR-Proxy over TLS.",
            "",
            "| measurement | direct p50 / p99 | through `/search` p50 / p99 | added p50 |",
            "|---|---|---|---|",
        ]
        for name, direct in self.direct.items():
            proxied = self.proxied[name]
            lines.append(
                f"| {name} | {direct.p50:.2f} / {direct.p99:.2f} ms |"
                f" {proxied.p50:.2f} / {proxied.p99:.2f} ms | **{added[name]:+.2f} ms** |"
            )
        lines += [
            f"| baseline: `GET /health` | {self.health_direct.p50:.2f} /"
            f" {self.health_direct.p99:.2f} ms | {self.health_proxied.p50:.2f} /"
            f" {self.health_proxied.p99:.2f} ms (TLS) |"
            f" {self.health_proxied.p50 - self.health_direct.p50:+.2f} ms |",
            "",
            "| token issuance | p50 / p99 |",
            "|---|---|",
            f"| `POST /token` (client credentials) | **{self.token.p50:.2f}** /"
            f" {self.token.p99:.2f} ms |",
            f"| `GET /ti-provider-authenticate` | **{self.provider_token.p50:.2f}** /"
            f" {self.provider_token.p99:.2f} ms |",
            f"| `GET /tim-authenticate`, total | {self.tim_authenticate.p50:.2f} /"
            f" {self.tim_authenticate.p99:.2f} ms |",
            f"| baseline: the homeserver's userinfo alone | {self.userinfo.p50:.2f} /"
            f" {self.userinfo.p99:.2f} ms |",
            f"| `GET /tim-authenticate` without the userinfo round trip |"
            f" **{self.tim_authenticate.p50 - self.userinfo.p50:.2f} ms** |",
            "",
            f"Federation list of {self.domains:,} domains regenerated and signed twice"
            f" (BP256R1 + ES256): **{self.regenerate_seconds * 1000:.0f} ms**.",
        ]
        return "\n".join(lines)


def _measure(call: Callable[[], float], rounds: int) -> Latency:
    for _ in range(5):
        call()
    return Latency.of([call() for _ in range(rounds)])


class _Userinfo(BaseHTTPRequestHandler):
    """A homeserver's ``/_matrix/federation/v1/openid/userinfo`` for every token."""

    def do_GET(self) -> None:
        body = json.dumps({"sub": f"@bench:{USERINFO_SERVER}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _userinfo_server(pki: LocalPKI) -> ThreadingHTTPServer:
    cert = pki.ensure_server_cert(USERINFO_SERVER, [USERINFO_SERVER, *LOOPBACK_NAMES])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Userinfo)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert.cert), str(cert.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _insert_domains(config: FhirProxyConfig, count: int) -> float:
    """Fill the domains table with ``count`` domains; return the regeneration time (s)."""
    db = open_database(config.database)
    now = datetime.now(UTC).isoformat()
    try:
        with db.write() as tx:
            tx.executemany(
                "INSERT INTO domains (domain, client_id, telematik_id, is_insurance, ik,"
                " redirect_domains, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        f"service-{i:06d}.bench.tim.test",
                        "bench",
                        f"1-{i:010d}",
                        0,
                        "[]",
                        "[]",
                        now,
                        now,
                    )
                    for i in range(count)
                ],
            )
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            regenerate(db, config)
            runs.append(time.perf_counter() - started)
        return percentile(runs, 0.5)
    finally:
        db.close()


def bench_directory_proxy(
    resources: int = 20_000, *, rounds: int = 300, domains: int = 100_000
) -> FhirProxyBenchResult:
    """Run the benchmark (see the module docstring)."""
    organizations = practitioners = max(1, resources // 8)
    with tempfile.TemporaryDirectory(prefix="timkit-bench-proxy-") as tmp:
        work = Path(tmp)
        pki = LocalPKI(work / "pki")
        pki.ensure_ca()
        context = ssl.create_default_context(cafile=str(pki.ca_cert_path))
        database = f"sqlite:///{work / 'directory.db'}"
        resources, _ = load_synthetic(database, organizations, practitioners)
        samples: Samples = draw_samples(organizations, practitioners)
        userinfo = _userinfo_server(pki)
        directory_port, proxy_port = free_port(), free_port()
        _, token_file = write_directory_config(work, database, directory_port)
        directory_token = token_file.read_text("utf-8").strip()
        cert = pki.ensure_server_cert("fhir-proxy", list(LOOPBACK_NAMES))
        config = FhirProxyConfig(
            port=proxy_port,
            tls_cert=cert.cert,
            tls_key=cert.key,
            base_url=f"https://127.0.0.1:{proxy_port}",
            upstream=f"http://127.0.0.1:{directory_port}",
            upstream_token_file=token_file,
            database=f"sqlite:///{work / 'fhir-proxy.db'}",
            pki_dir=work / "pki",
            matrix={  # type: ignore[arg-type]
                "routes": {USERINFO_SERVER: f"127.0.0.1:{userinfo.server_address[1]}"},
                "ca_file": pki.ca_cert_path,
            },
            rate_limit={"per_minute": 1_000_000, "burst": 1_000_000},  # type: ignore[arg-type]
            log_level="WARNING",
        )
        dump_toml(config, work / "fhir-proxy.toml")
        proxy_db = open_database(config.database)
        _, secret = ProviderStore(proxy_db).add("bench", "benchmark provider")
        with proxy_db.write() as tx:
            DomainStore.insert(
                tx, Domain(USERINFO_SERVER, BENCH_TELEMATIK_ID, tim_anbieter="bench")
            )
        proxy_db.close()
        processes = Processes()
        try:
            for name, module, url, ca_cert in (
                ("directory", "timkit.directory", f"http://127.0.0.1:{directory_port}", None),
                ("fhir-proxy", "timkit.fhirproxy", config.base_url, pki.ca_cert_path),
            ):
                config_file = work / f"{name}.toml"
                processes.start(name, [sys.executable, "-m", module, "--config", str(config_file)])
                processes.wait_healthy(name, url + "/health", ca_cert=ca_cert, timeout=60)
            search_token = token_service(config).issue(
                Kind.SEARCH, f"matrix:u/bench:{USERINFO_SERVER}"
            )
            auth = {"Authorization": f"Bearer {search_token.token}"}
            direct = BenchClient(directory_port, token=directory_token)
            proxied = BenchClient(proxy_port, context)
            direct_latency: dict[str, Latency] = {}
            proxied_latency: dict[str, Latency] = {}
            for name, build in SEARCHES.items():
                paths = [build(samples, i) for i in range(rounds)]
                direct_latency[name] = Latency.of(
                    [direct.request("GET", p)[0] for p in paths[:5] + paths][5:]
                )
                proxied_latency[name] = Latency.of(
                    [proxied.request("GET", "/search" + p, auth)[0] for p in paths[:5] + paths][5:]
                )
            health_direct = _measure(lambda: direct.request("GET", "/health")[0], rounds)
            health_proxied = _measure(lambda: proxied.request("GET", "/health")[0], rounds)
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            basic = _basic("bench", secret)
            token = _measure(
                lambda: proxied.request(
                    "POST", "/token", {**form, **basic}, "grant_type=client_credentials"
                )[0],
                rounds,
            )
            _, raw = proxied.request(
                "POST", "/token", {**form, **basic}, "grant_type=client_credentials"
            )
            ti_token = json.loads(raw)["access_token"]
            provider = _measure(
                lambda: proxied.request(
                    "GET", "/ti-provider-authenticate", {"Authorization": f"Bearer {ti_token}"}
                )[0],
                rounds,
            )
            tim_auth = _measure(
                lambda: proxied.request(
                    "GET",
                    f"/tim-authenticate?mxId={quote(USERINFO_SERVER)}",
                    {"X-Matrix-OpenID-Token": "bench-openid-token"},
                )[0],
                rounds,
            )
            userinfo_client = BenchClient(userinfo.server_address[1], context)
            userinfo_latency = _measure(
                lambda: userinfo_client.request(
                    "GET", "/_matrix/federation/v1/openid/userinfo?access_token=x"
                )[0],
                rounds,
            )
            for client in (direct, proxied, userinfo_client):
                client.close()
        finally:
            processes.stop_all()
            userinfo.shutdown()
            userinfo.server_close()
        regenerate_seconds = _insert_domains(config, domains)
        return FhirProxyBenchResult(
            resources=resources,
            direct=direct_latency,
            proxied=proxied_latency,
            health_direct=health_direct,
            health_proxied=health_proxied,
            token=token,
            provider_token=provider,
            tim_authenticate=tim_auth,
            userinfo=userinfo_latency,
            domains=domains,
            regenerate_seconds=regenerate_seconds,
        )


def _basic(client_id: str, secret: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}
