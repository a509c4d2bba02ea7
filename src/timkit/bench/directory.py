"""``timkit bench directory``: the FHIR-Directory at the size of Germany's directory.

1. Bulk load: synthetic resources (:mod:`timkit.directory.demo.generate`) streamed through the
   loader (validation and indexing in worker processes, one writer) into a fresh database.
2. A real directory process (``python -m timkit.directory``) on a free loopback port.
3. Over HTTP with keep-alive connections: read by id, the six typical TI-M client
   searches (:data:`SEARCHES`) one client at a time (p50/p99), then 8 concurrent clients
   running the searches round-robin (searches/s).
4. Baseline in the same run: ``GET /health`` on the same server, i.e. the HTTP floor.
5. Database size on disk.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from timkit.bench.harness import Latency, Processes
from timkit.bench.machine import report_head
from timkit.core.config import dump_toml
from timkit.core.db import Database
from timkit.core.process import free_port
from timkit.directory.config import DirectoryConfig
from timkit.directory.demo.generate import generate
from timkit.directory.load import load
from timkit.directory.service import open_directory
from timkit.runtime.layout import Layout
from timkit.runtime.plan import directory_token_file

CLIENTS = 8
PROCESSES = os.cpu_count() or 1
"""Serving processes of the benchmarked directory: one per CPU, as in production."""
TELEMATIK_ID = "https://gematik.de/fhir/sid/telematik-id"
_INCLUDES_HS = (
    "&_include=HealthcareService:organization&_include=HealthcareService:location"
    "&_include=HealthcareService:endpoint"
)
_INCLUDES_PR = (
    "&_include=PractitionerRole:practitioner&_include=PractitionerRole:location"
    "&_include=PractitionerRole:endpoint"
)


@dataclass
class Samples:
    """Values drawn from the generated data, so every search has real hits."""

    ids: list[str] = field(default_factory=list)
    org_names: list[str] = field(default_factory=list)
    telematik_ids: list[str] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    cities: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    qualifications: list[str] = field(default_factory=list)


# The six typical TI-M client searches (FHIR_VZD_HOWTO_Search, app-vzd-cli defaults).
SEARCHES: dict[str, Callable[[Samples, int], str]] = {
    "HealthcareService by name (_text) + org active + includes": lambda s, i: (
        "/HealthcareService?organization.active=true&_text="
        + quote(s.org_names[i % len(s.org_names)])
        + _INCLUDES_HS
    ),
    "HealthcareService by organization TelematikID + includes": lambda s, i: (
        "/HealthcareService?organization.identifier="
        + quote(TELEMATIK_ID + "|" + s.telematik_ids[i % len(s.telematik_ids)])
        + _INCLUDES_HS
    ),
    "PractitionerRole by practitioner.name + active + includes": lambda s, i: (
        "/PractitionerRole?practitioner.active=true&practitioner.name="
        + quote(s.families[i % len(s.families)])
        + _INCLUDES_PR
    ),
    "PractitionerRole by city + qualification + TI-M endpoint (HOWTO sample)": lambda s, i: (
        "/PractitionerRole?practitioner.active=true&location.address-city="
        + quote(s.cities[i % len(s.cities)])
        + "&practitioner.qualification="
        + quote(s.qualifications[i % len(s.qualifications)])
        + "&endpoint.payload-type=tim-chat&endpoint.status=active"
        + _INCLUDES_PR
    ),
    "HealthcareService by location.address-city, _count=20": lambda s, i: (
        "/HealthcareService?organization.active=true&location.address-city="
        + quote(s.cities[i % len(s.cities)])
        + "&_count=20"
    ),
    "Endpoint by MXID address + _revinclude": lambda s, i: (
        "/Endpoint?address="
        + quote(s.addresses[i % len(s.addresses)])
        + "&_revinclude=HealthcareService:endpoint&_revinclude=PractitionerRole:endpoint"
    ),
}


@dataclass(frozen=True)
class DirectoryBenchResult:
    """Everything ``timkit bench directory`` measured."""

    database: str
    resources: int
    load_seconds: float
    read: Latency
    searches: dict[str, Latency]
    hits: dict[str, int]
    """Per search: the entries of its last answer."""
    searches_per_second: float
    baseline_health: Latency
    baseline_health_per_second: float
    size_bytes: int

    def markdown(self) -> str:
        """The result as a Markdown section for ``docs/benchmarks.md``."""
        rate = self.resources / self.load_seconds
        lines = [
            *report_head("directory", self.database),
            "| measurement | value |",
            "|---|---|",
            f"| resources loaded | {self.resources:,} |",
            f"| bulk load | {self.load_seconds:.0f} s = **{rate:,.0f} resources/s** |",
            f"| read by id, p50 / p99 | **{self.read.p50:.2f}** / {self.read.p99:.2f} ms |",
        ]
        for name, latency in self.searches.items():
            lines.append(
                f"| {name}: p50 / p99 ({self.hits[name]} hits) |"
                f" **{latency.p50:.2f}** / **{latency.p99:.2f}** ms |"
            )
        lines += [
            f"| six searches round-robin, {CLIENTS} concurrent clients,"
            f" {PROCESSES} serving processes |"
            f" **{self.searches_per_second:,.0f} searches/s** |",
            f"| baseline: `GET /health` p50 / p99, same server | {self.baseline_health.p50:.2f}"
            f" / {self.baseline_health.p99:.2f} ms |",
            f"| baseline: `GET /health`, {CLIENTS} concurrent clients |"
            f" {self.baseline_health_per_second:,.0f} requests/s |",
            f"| database size on disk | {self.size_bytes / 2**20:,.0f} MiB |",
        ]
        return "\n".join(lines)


def load_synthetic(database: str, organizations: int, practitioners: int) -> tuple[int, float]:
    """Bulk-load the synthetic directory of that size into ``database``.

    Returns:
        the resources loaded and the seconds the load took.
    """
    directory = open_directory(database)
    try:
        stats = load(directory, generate(organizations, practitioners))
    finally:
        directory.db.close()
    return stats.resources, stats.seconds


def draw_samples(organizations: int, practitioners: int) -> Samples:
    """Draw search values from the same deterministic data the load used."""
    samples = Samples()
    for n, resource in enumerate(_sample_stream(organizations, practitioners)):
        if n % 37 == 0:  # a prime step, so every resource type of the 4-resource units is hit
            _collect(samples, resource)
    return samples


def _sample_stream(organizations: int, practitioners: int) -> Iterator[dict[str, Any]]:
    # Units are independent and ordered; the first few thousand cover every value kind.
    limit = 20_000
    for n, resource in enumerate(generate(organizations, practitioners)):
        if n >= limit:
            return
        yield resource


def _collect(samples: Samples, resource: dict[str, Any]) -> None:
    kind = resource["resourceType"]
    samples.ids.append(f"{kind}/{resource['id']}")
    if kind == "Organization" and resource.get("active", True):
        samples.org_names.append(resource["name"])
        samples.telematik_ids.append(resource["identifier"][0]["value"])
    elif kind == "Practitioner" and resource.get("active", True):
        samples.families.append(resource["name"][0]["family"])
        samples.qualifications.extend(
            c["code"] for q in resource.get("qualification", ()) for c in q["code"]["coding"]
        )
    elif kind == "Location":
        samples.cities.append(resource["address"]["city"])
    elif kind == "Endpoint":
        samples.addresses.append(resource["address"])


class BenchClient:
    """One keep-alive HTTP/1.1 connection to ``127.0.0.1:port`` (TLS when ``context`` is set).

    Requests raise RuntimeError unless the answer is 200; they return the elapsed
    milliseconds and the body. ``token`` (the FHIR-Directory's bearer token) is sent with
    every request.

    The benchmarks' one client outside :mod:`timkit.core.http`: ``http.client`` on one
    blocking connection adds the least of any client to each request, so the sub-millisecond
    latencies measured are the server's (an ``httpx`` client adds a noticeable share).
    """

    def __init__(
        self, port: int, context: ssl.SSLContext | None = None, token: str | None = None
    ) -> None:
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._connection: http.client.HTTPConnection = (
            http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=context)
            if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        )

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: str = ""
    ) -> tuple[float, bytes]:
        """Send one request; (milliseconds, body)."""
        started = time.perf_counter()
        sent = {**self._auth, **(headers or {})}
        self._connection.request(method, path, body=body or None, headers=sent)
        response = self._connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return elapsed, data

    def get(self, path: str) -> tuple[float, bytes]:
        """``GET path`` accepting FHIR JSON."""
        return self.request("GET", path, {"Accept": "application/fhir+json"})

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


def _latency(client: BenchClient, paths: list[str]) -> tuple[Latency, int]:
    """The latency of ``paths`` after five of them as warm-up; the hits of the last."""
    for path in paths[:5]:
        client.get(path)  # warm-up
    times: list[float] = []
    hits = 0
    for path in paths:
        elapsed, body = client.get(path)
        times.append(elapsed)
        hits = len(orjson.loads(body).get("entry", ())) if body.startswith(b"{") else 0
    return Latency.of(times), hits


def _throughput(port: int, paths: list[str], seconds: float, token: str) -> float:
    done = [0] * CLIENTS
    stop = time.perf_counter() + seconds

    def worker(index: int) -> None:
        client = BenchClient(port, token=token)
        i = index
        while time.perf_counter() < stop:
            client.get(paths[i % len(paths)])
            done[index] += 1
            i += CLIENTS
        client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def _size(database: str, workdir: Path) -> int:
    if database.startswith("sqlite:///"):
        return sum(p.stat().st_size for p in workdir.glob("directory.db*"))
    db = Database.open(database)
    try:
        with db.read() as cur:
            return int(cur.execute("SELECT pg_database_size(current_database())").fetchone()[0])
    finally:
        db.close()


def write_directory_config(
    workdir: Path, database: str, port: int, *, processes: int = 1
) -> tuple[Path, Path]:
    """Write the FHIR-Directory's config for ``database`` on ``port`` into ``workdir``.

    Its bearer token is made as ``timkit up`` makes it
    (:func:`timkit.runtime.plan.directory_token_file`).

    Returns:
        the config file and the bearer token's file.
    """
    token_file = directory_token_file(Layout(workdir))
    config = DirectoryConfig(
        port=port,
        database=database,
        processes=processes,
        token_file=token_file,
        log_level="WARNING",
    )
    config_file = workdir / "directory.toml"
    dump_toml(config, config_file)
    return config_file, token_file


def _serve(database: str, workdir: Path, processes: Processes) -> tuple[int, str]:
    """Start the FHIR-Directory on ``database``; its port and bearer token once healthy."""
    port = free_port()
    config, token_file = write_directory_config(workdir, database, port, processes=PROCESSES)
    token = token_file.read_text("utf-8").strip()
    processes.start(
        "directory", [sys.executable, "-m", "timkit.directory", "--config", str(config)]
    )
    processes.wait_healthy("directory", f"http://127.0.0.1:{port}/health", timeout=60)
    return port, token


def bench_directory(
    resources: int, *, database: str | None = None, seconds: float = 10.0, rounds: int = 200
) -> DirectoryBenchResult:
    """Run the benchmark (see the module docstring) on ``database`` or a temporary SQLite."""
    organizations = practitioners = max(1, resources // 8)
    total = 4 * (organizations + practitioners)
    with tempfile.TemporaryDirectory(prefix="timkit-bench-") as tmp:
        workdir = Path(tmp)
        url = database or f"sqlite:///{workdir / 'directory.db'}"
        _, load_seconds = load_synthetic(url, organizations, practitioners)
        samples = draw_samples(organizations, practitioners)
        processes = Processes()
        try:
            port, token = _serve(url, workdir, processes)
            client = BenchClient(port, token=token)
            reads = [f"/{samples.ids[i % len(samples.ids)]}" for i in range(rounds * 2)]
            read, _ = _latency(client, reads)
            searches: dict[str, Latency] = {}
            hits: dict[str, int] = {}
            for name, build in SEARCHES.items():
                searches[name], hits[name] = _latency(
                    client, [build(samples, i) for i in range(rounds)]
                )
            health, _ = _latency(client, ["/health"] * rounds * 2)
            client.close()
            mixed = [build(samples, i) for i in range(rounds) for build in SEARCHES.values()]
            per_second = _throughput(port, mixed, seconds, token)
            health_per_second = _throughput(port, ["/health"], seconds / 2, token)
        finally:
            processes.stop_all()
        return DirectoryBenchResult(
            database="PostgreSQL" if database else "embedded SQLite",
            resources=total,
            load_seconds=load_seconds,
            read=read,
            searches=searches,
            hits=hits,
            searches_per_second=per_second,
            baseline_health=health,
            baseline_health_per_second=health_per_second,
            size_bytes=_size(url, workdir),
        )
