"""``timkit bench proxy``: what the Messenger-Proxy costs, side by side with direct Synapse.

Everything runs in a fresh temporary directory on free loopback ports, in two phases:

1. One Messenger-Service planned by :func:`timkit.runtime.plan.plan_service` (Synapse on a
   loopback HTTP port behind a ``python -m timkit.proxy`` serving TLS, as deployed), a second
   proxy in front of the same Synapse with the same configuration but its inbound listener
   over plain HTTP (the fair comparison with plain HTTP to Synapse), plus a bare TCP relay
   process (:data:`TCP_RELAY_CODE`) as the floor of any extra hop. Measured per target
   (Synapse directly, TCP relay, proxy over HTTP, proxy over TLS), one ``aiohttp`` session
   with keep-alive per simulated client:

   * latency of sequential ``GET /_matrix/client/versions`` and
     ``PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}``, the targets
     interleaved request by request (so drift in Synapse hits all of them alike);
   * throughput of the same two requests with ``clients`` concurrent clients (one user and
     one room each), the same measured duration per target after a short warm-up, with the
     CPU time each process spent per request;
   * the RSS of each proxy process after start, idle, and after the load.

2. Cross-organisation delivery, two pairs of Synapses, measured interleaved message by
   message with the same client code: ``A`` sends a message, ``B``'s ``/sync`` long-poll
   (running all the time) sees it.

   * proxied: two Messenger-Services planned by :func:`timkit.runtime.plan.plan_service`
     (Synapse on a loopback HTTP port behind its proxy's TLS inbound listener; outbound
     federation through the proxy's TLS-intercepting forward proxy, routed to the other
     proxy by the route file);
   * direct: two Synapses federating with each other without proxies (server names
     ``localhost:PORT``, TLS listener with a local-CA certificate), their ``homeserver.yaml``
     derived from the proxied Synapse's generated one so only the networking differs.

The proxies pull their federation list from a small TLS stand-in of the
Registrierungs-Dienst inside this process (a list signed by the local PKI, the stage-3
invite check allowing everything). Benchmarks measure; they never assert timings.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import psutil
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from signedjson.key import generate_signing_key, write_signing_keys

from timkit.bench.harness import (
    BenchError,
    Latency,
    Processes,
    Rate,
    cpu_seconds,
    processes,
    rss,
)
from timkit.bench.machine import report_head
from timkit.core import jwt
from timkit.core.config import dump_toml, load_toml
from timkit.core.errors import Codes
from timkit.core.http import aiohttp_session, async_client
from timkit.core.names import NameTable
from timkit.core.process import free_port
from timkit.core.tls import (
    FEDERATION_LIST_SIGNER,
    LOOPBACK_NAMES,
    CertPaths,
    LocalPKI,
    server_ssl_context,
)
from timkit.core.web import running_app
from timkit.proxy.config import ProxyConfig
from timkit.runtime.config import RegistrationSettings, RuntimeSettings, TimkitConfig
from timkit.runtime.layout import Layout
from timkit.runtime.plan import ComponentPlan, ServiceRecord, plan_service
from timkit.sdk.admin import register_user

BIND = "127.0.0.1"
SINGLE = "bench.tim.test"
"""Server name of the Synapse of phase 1."""
ORG_A = "a.bench.tim.test"
ORG_B = "b.bench.tim.test"
RD_TOKEN = secrets.token_urlsafe(24)
DIRECT = "direct"
PROXY = "proxy (HTTP)"
PROXY_TLS = "proxy (TLS)"
TCP_RELAY = "TCP relay (floor)"
TARGETS = (DIRECT, TCP_RELAY, PROXY, PROXY_TLS)
PROXIES = (PROXY, PROXY_TLS)
VERSIONS = "GET /_matrix/client/versions"
SEND = "PUT …/rooms/{roomId}/send/m.room.message/{txnId}"
ENDPOINTS = (VERSIONS, SEND)
PROXIED = "via both Messenger-Proxies"
FEDERATED = "direct Synapse-to-Synapse federation"
CPU_PARTS = ("Synapse", "relay", "bench client")
"""Processes whose CPU time is counted in the throughput phases (relay: the proxy or the TCP
relay in front of Synapse)."""
TCP_RELAY_CODE = """
import asyncio, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

async def handle(reader, writer):
    upstream = await asyncio.open_connection(sys.argv[2], int(sys.argv[3]))
    await asyncio.gather(pipe(reader, upstream[1]), pipe(upstream[0], writer),
                         return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, sys.argv[1], int(sys.argv[4]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""
"""A byte pump in its own process (no HTTP parsing): what any extra hop costs here."""
WARMUP_REQUESTS = 20
WARMUP_MESSAGES = 3
MESSAGE_PAUSE = 0.05
"""Seconds between two deliveries (the receiver's next long-poll is parked by then)."""
LOG_LEVEL = "WARNING"
SYNC_FILTER = json.dumps(
    {
        "room": {"timeline": {"limit": 20}, "state": {"lazy_load_members": True}},
        "presence": {"types": []},
        "account_data": {"types": []},
    }
)
PASSWORD = "bench-password-0123"  # noqa: S105 - throwaway users of a throwaway homeserver

# The goals (Messenger-Proxy performance).
GOAL_ADDED_P50_MS = 1.0
GOAL_ADDED_P99_MS = 5.0
GOAL_THROUGHPUT_LOSS = 0.15
GOAL_DELIVERY_RATIO = 1.15
GOAL_RSS_MB = 40.0


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """Memory of one proxy process in bytes: RSS idle after start and after the load, and the
    idle USS (the pages no other process shares: RSS minus shared libraries and the
    interpreter's pages that the other proxy maps too)."""

    idle: int
    loaded: int
    idle_uss: int = 0


@dataclass(frozen=True)
class Goal:
    """One of the issue's goals: what it asks, what was measured, whether it is met."""

    name: str
    measured: str
    met: bool


@dataclass(frozen=True)
class MessengerProxyBenchResult:
    """Everything ``timkit bench proxy`` measured (see the module docstring)."""

    gets: int
    puts: int
    clients: int
    seconds: float
    messages: int
    latency: dict[str, dict[str, Latency]]
    """endpoint → target → latency."""
    throughput: dict[str, dict[str, Rate]]
    """endpoint → target → rate."""
    delivery: dict[str, Latency]
    """:data:`PROXIED` / :data:`FEDERATED` → send-to-seen latency."""
    send: dict[str, Latency]
    """Like :attr:`delivery`: the sender's ``PUT`` alone."""
    memory: dict[str, Memory]
    """:data:`PROXY` / :data:`PROXY_TLS` → RSS."""
    synapse_rss: int
    load: tuple[float, float] = (0.0, 0.0)
    """The machine's 1-minute load average when the bench started and ended."""

    def added(self, endpoint: str, target: str = PROXY) -> tuple[float, float]:
        """Added p50 and p99 (ms) of ``target`` over direct Synapse for ``endpoint``."""
        direct, proxied = self.latency[endpoint][DIRECT], self.latency[endpoint][target]
        return proxied.p50 - direct.p50, proxied.p99 - direct.p99

    def loss(self, endpoint: str, target: str = PROXY) -> float:
        """Throughput lost by ``target`` relative to direct Synapse (0.1 = 10 %)."""
        direct = self.throughput[endpoint][DIRECT].per_second
        return 1.0 - self.throughput[endpoint][target].per_second / direct

    def delivery_ratio(self) -> float:
        """Proxied delivery p50 over direct federation delivery p50."""
        return self.delivery[PROXIED].p50 / self.delivery[FEDERATED].p50

    def goals(self) -> list[Goal]:
        """The issue's four goals, judged on this run's numbers."""
        added = {e: self.added(e) for e in ENDPOINTS}
        loss = {e: self.loss(e) for e in ENDPOINTS}
        rss = max(m.idle for m in self.memory.values()) / 1e6
        return [
            Goal(
                f"added latency p50 ≤ {GOAL_ADDED_P50_MS:g} ms, p99 ≤ {GOAL_ADDED_P99_MS:g} ms"
                " (proxy over HTTP vs direct)",
                "; ".join(f"{_short(e)} {a[0]:+.2f} / {a[1]:+.2f} ms" for e, a in added.items()),
                all(
                    a[0] <= GOAL_ADDED_P50_MS and a[1] <= GOAL_ADDED_P99_MS for a in added.values()
                ),
            ),
            Goal(
                f"throughput loss ≤ {GOAL_THROUGHPUT_LOSS:.0%} at {self.clients} clients",
                "; ".join(f"{_short(e)} {v:.1%}" for e, v in loss.items()),
                all(v <= GOAL_THROUGHPUT_LOSS for v in loss.values()),
            ),
            Goal(
                f"cross-organisation delivery p50 ≤ {GOAL_DELIVERY_RATIO:g} x direct federation",
                f"{self.delivery_ratio():.2f}x",
                self.delivery_ratio() <= GOAL_DELIVERY_RATIO,
            ),
            Goal(
                f"proxy RSS idle ≤ {GOAL_RSS_MB:g} MB",
                f"{rss:.1f} MB ({rss * 1e6 / 2**20:.1f} MiB)",
                rss <= GOAL_RSS_MB,
            ),
        ]

    def markdown(self) -> str:
        """The result as a Markdown section for ``docs/benchmarks.md``."""
        lines = [
            *report_head("proxy"),
            f"Load average (1 min) at start / end: {self.load[0]:.2f} / {self.load[1]:.2f}.",
            "",
            f"Sequential latency: {self.gets} `GET versions` and {self.puts} `PUT send` per"
            " target, one keep-alive client, the targets interleaved request by request. Added"
            " = percentile minus the direct percentile. The TCP relay is a byte pump in its own"
            " process (asyncio streams, no HTTP): the floor any extra hop costs on this machine.",
            "",
            "| request | target | p50 / p99 | added p50 / p99 |",
            "|---|---|---|---|",
        ]
        for endpoint in ENDPOINTS:
            for target in TARGETS:
                latency = self.latency[endpoint][target]
                added = (
                    ""
                    if target == DIRECT
                    else "{:+.2f} / {:+.2f} ms".format(*self.added(endpoint, target))
                )
                if target == PROXY:
                    added = f"**{added}**"
                lines.append(f"| {_short(endpoint)} | {target} | {latency.text()} | {added} |")
        lines += [
            "",
            f"Throughput: {self.clients} concurrent clients (one user, one room and one"
            f" keep-alive connection each), {self.seconds:g} s measured per target after a"
            " warm-up. CPU time per request (user + system) of each process in the measured"
            " window; the 2 cores are shared by all of them.",
            "",
            "| request | target | requests/s | loss | CPU per request: "
            + " / ".join(CPU_PARTS)
            + " |",
            "|---|---|---|---|---|",
        ]
        for endpoint in ENDPOINTS:
            for target in TARGETS:
                rate = self.throughput[endpoint][target]
                loss = "" if target == DIRECT else f"{self.loss(endpoint, target):.1%}"
                if target == PROXY:
                    loss = f"**{loss}**"
                cpu = " / ".join(
                    f"{rate.cpu_ms[p]:.2f}" if p in rate.cpu_ms else "-" for p in CPU_PARTS
                )
                lines.append(
                    f"| {_short(endpoint)} | {target} | {_rate(rate)} | {loss} | {cpu} ms |"
                )
        lines += [
            "",
            f"Cross-organisation delivery: {self.messages} messages per path, A's `PUT send`"
            " until B's running `/sync` long-poll returns the event, both paths interleaved.",
            "",
            "| path | send → seen at B p50 / p99 | of which A's `PUT` p50 |",
            "|---|---|---|",
        ]
        for path in (PROXIED, FEDERATED):
            lines.append(
                f"| {path} | {self.delivery[path].text()} | {self.send[path].p50:.2f} ms |"
            )
        lines += [
            f"| ratio of the p50s | **{self.delivery_ratio():.2f}x** | |",
            "",
            "| process | RSS idle after start | RSS after the load | USS idle |",
            "|---|---|---|---|",
        ]
        for target, memory in self.memory.items():
            lines.append(
                f"| `python -m timkit.proxy`, inbound {target.split()[-1].strip('()')} |"
                f" **{_mib(memory.idle)}** | {_mib(memory.loaded)} | {_mib(memory.idle_uss)} |"
            )
        lines += [
            f"| baseline: the Synapse behind them, after the load | {_mib(self.synapse_rss)} | | |",
            "",
            "| goal | measured | met |",
            "|---|---|---|",
        ]
        for goal in self.goals():
            lines.append(f"| {goal.name} | {goal.measured} | {'yes' if goal.met else '**no**'} |")
        return "\n".join(lines)


def _short(endpoint: str) -> str:
    return "GET versions" if endpoint == VERSIONS else "PUT send"


def _rate(rate: Rate) -> str:
    errors = f" ({rate.failed} failed)" if rate.failed else ""
    return f"{rate.per_second:,.0f}{errors}"


def _mib(rss: int) -> str:
    return f"{rss / 2**20:.1f} MiB ({rss / 1e6:.1f} MB)"


# -- processes --------------------------------------------------------------------------------


async def _wait_healthy(
    children: Processes, name: str, url: str, ca_cert: Path, *, proxy: bool = False
) -> None:
    """:meth:`Processes.wait_healthy` in a thread (the RD stand-in shares this event loop);
    a proxy is ready once its ``/health`` says ``ok`` (it holds a verified list)."""
    ready = _proxy_ready if proxy else (lambda _body: True)
    await asyncio.to_thread(children.wait_healthy, name, url, ca_cert=ca_cert, ready=ready)


def _proxy_ready(body: bytes) -> bool:
    document = orjson.loads(body)
    return isinstance(document, dict) and document.get("status") == "ok"


# -- the Registrierungs-Dienst stand-in -------------------------------------------------------


def _signed_list(pki: LocalPKI, domains: Sequence[str]) -> bytes:
    """A federation list signed like the VZD-FHIR-Directory signs it (BP256R1, ``x5c``)."""
    signer = pki.ensure_signing_cert(
        "flist", "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1(), role=FEDERATION_LIST_SIGNER
    )
    payload = {"version": 1, "domainList": [{"domain": d} for d in domains]}
    return jwt.sign(
        orjson.dumps(payload),
        jwt.key_from_pem(signer.key.read_bytes()),
        x5c=jwt.x5c_of(x509.load_pem_x509_certificates(signer.cert.read_bytes())),
    ).encode()


def _rd_app(federation_list: bytes) -> web.Application:
    """``GET /federation`` (the signed list) and ``POST /vzd/invite`` (always allowed)."""

    def authorised(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {RD_TOKEN}"

    async def listing(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"errcode": Codes.UNKNOWN_TOKEN, "error": "?"}, status=401)
        if request.query.get("version") == "1":
            return web.Response(status=304)
        return web.Response(body=federation_list, content_type="application/jose")

    async def invite(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"errcode": Codes.UNKNOWN_TOKEN, "error": "?"}, status=401)
        return web.json_response({"allowed": True, "rule": "bench"})

    app = web.Application()
    app.router.add_get("/federation", listing)
    app.router.add_post("/vzd/invite", invite)
    return app


# -- component configs ------------------------------------------------------------------------


def _bench_config(work: Path, rd_port: int) -> TimkitConfig:
    """The federation config the benchmark's services are planned with: data in ``work``,
    the Registrierungs-Dienst (the stand-in) on ``rd_port``."""
    return TimkitConfig(
        data_dir=work,
        runtime=RuntimeSettings(bind=BIND, log_level=LOG_LEVEL),
        registration=RegistrationSettings(port=rd_port),
    )


def _plan(
    config: TimkitConfig, domain: str, port: int, homeserver_port: int
) -> tuple[ComponentPlan, ComponentPlan]:
    """Plan a Messenger-Service as the control API does; (proxy, homeserver)."""
    record = ServiceRecord(
        domain=domain,
        organisation=f"bench {domain}",
        port=port,
        forward_proxy_port=free_port(),
        homeserver_port=homeserver_port,
    )
    layout = Layout(config.data_dir)
    proxy, homeserver = plan_service(config, layout, LocalPKI(layout.pki), record)
    return proxy, homeserver


def _plain_proxy(planned: ComponentPlan, home: Path, port: int) -> list[str]:
    """argv of a second proxy configured like ``planned`` but serving its inbound listener
    over plain HTTP on ``port`` (own forward port, database and list state in ``home``)."""
    config = load_toml(ProxyConfig, Path(planned.argv[-1]))
    plain = config.model_copy(
        update={
            "inbound": config.inbound.model_copy(
                update={"port": port, "tls_cert": None, "tls_key": None}
            ),
            "forward": config.forward.model_copy(update={"port": 0}),  # any free port
            "federation_list": config.federation_list.model_copy(
                update={"state_file": home / "federation-list.json"}
            ),
            "contacts": config.contacts.model_copy(
                update={"database": f"sqlite:///{home / 'proxy.db'}"}
            ),
        }
    )
    config_file = home / "proxy.toml"
    dump_toml(plain, config_file)
    return [*planned.argv[:-1], str(config_file)]


def _synapse_data(layout: Layout, domain: str) -> Path:
    """The Synapse data directory :func:`plan_service` gives ``domain``."""
    return layout.service_dir(domain) / "synapse"


def _write_secret(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_urlsafe(32), "utf-8")
    return path


def _direct_yaml(template: Path, home: Path, port: int, cert: CertPaths, ca: Path) -> Path:
    """``homeserver.yaml`` of a Synapse federating without a proxy, as ``localhost:PORT``.

    Starts from ``template`` (a proxied Synapse's generated file, so rate limits, logging and
    the rest stay the same) and changes only the networking and the files of its own.
    """
    rendered: dict[str, Any] = yaml.safe_load(template.read_text("utf-8"))
    rendered.pop("https_proxy", None)
    home.mkdir(parents=True, exist_ok=True)
    (home / "media").mkdir(exist_ok=True)
    with open(home / "signing.key", "w", encoding="ascii") as fh:
        write_signing_keys(fh, [generate_signing_key("a_" + secrets.token_hex(2))])
    rendered.update(
        {
            "server_name": f"localhost:{port}",
            "public_baseurl": f"https://localhost:{port}/",
            "pid_file": str(home / "homeserver.pid"),
            "listeners": [
                {
                    "port": port,
                    "bind_addresses": [BIND],
                    "type": "http",
                    "tls": True,
                    "x_forwarded": False,
                    "resources": [{"names": ["client", "federation"], "compress": False}],
                }
            ],
            "tls_certificate_path": str(cert.cert),
            "tls_private_key_path": str(cert.key),
            "federation_custom_ca_list": [str(ca)],
            # It reaches the other Synapse on 127.0.0.1 without a proxy in between.
            "ip_range_blacklist": [],
            "federation_ip_range_blacklist": [],
            "trusted_key_servers": [],
            "database": {"name": "sqlite3", "args": {"database": str(home / "homeserver.db")}},
            "media_store_path": str(home / "media"),
            "signing_key_path": str(home / "signing.key"),
            "registration_shared_secret_path": str(
                _write_secret(home / "secrets" / "registration_shared_secret")
            ),
            "macaroon_secret_key_path": str(_write_secret(home / "secrets" / "macaroon")),
            "form_secret_path": str(_write_secret(home / "secrets" / "form")),
        }
    )
    path = home / "homeserver.yaml"
    path.write_text(yaml.safe_dump(rendered, sort_keys=False), "utf-8")
    return path


def _shared_secret(data_dir: Path) -> str:
    return (data_dir / "secrets" / "registration_shared_secret").read_text("utf-8").strip()


# -- clients ----------------------------------------------------------------------------------


def _session(ca_cert: Path, connections: int = 1) -> aiohttp.ClientSession:
    """One simulated client: keep-alive connections, no overall time-out but a generous one."""
    return aiohttp_session(ca_cert, limit=connections, timeout=60)


@dataclass
class _User:
    """A user at one base URL with an access token and a room to send to."""

    base: str
    user_id: str
    token: str
    room_id: str = ""
    txn: Iterator[int] = field(default_factory=itertools.count)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _register(
    ca_cert: Path, base: str, server_name: str, secret: str, localpart: str
) -> _User:
    async with async_client(ca_cert, timeout=60) as http:
        registration = await register_user(
            http,
            base,
            server_name=server_name,
            shared_secret=secret,
            localpart=localpart,
            password=PASSWORD,
        )
    if registration.access_token is None:
        raise BenchError(f"{registration.user_id} existed already")
    return _User(base, registration.user_id, registration.access_token)


async def _call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> Any:
    """A JSON request that must succeed; its JSON answer.

    Raises:
        BenchError: for any status but 200.
    """
    data = orjson.dumps(body) if body is not None else None
    if data is not None:
        headers = {**(headers or {}), "Content-Type": "application/json"}
    async with session.request(method, url, headers=headers, data=data) as response:
        payload = await response.read()
        if response.status != 200:
            raise BenchError(f"{method} {url}: {response.status} {payload[:300]!r}")
    return orjson.loads(payload)


_MESSAGE = orjson.dumps({"msgtype": "m.text", "body": "bench"})
_JSON = {"Content-Type": "application/json"}


def _send_url(user: _User, base: str, txn: str) -> str:
    room = quote(user.room_id, safe="")
    return f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"


async def _request(
    session: aiohttp.ClientSession, user: _User, base: str, endpoint: str, tag: str
) -> bool:
    """One benchmarked request; whether it succeeded."""
    if endpoint == VERSIONS:
        context = session.get(base + "/_matrix/client/versions")
    else:
        url = _send_url(user, base, f"{tag}-{next(user.txn)}")
        context = session.put(url, data=_MESSAGE, headers={**user.auth(), **_JSON})
    async with context as response:
        await response.read()
        return response.status == 200


# -- phase 1: one Synapse, direct vs proxied ---------------------------------------------------


@dataclass
class _Single:
    bases: dict[str, str]
    users: list[_User]
    relay_pids: dict[str, int]
    """Target → pid of the process in front of Synapse."""
    synapse_pid: int


async def _sequential(
    single: _Single, sessions: dict[str, aiohttp.ClientSession], endpoint: str, count: int
) -> dict[str, Latency]:
    """``count`` requests per target, the targets interleaved request by request."""
    user = single.users[0]
    samples: dict[str, list[float]] = {target: [] for target in TARGETS}
    for index in range(WARMUP_REQUESTS + count):
        for target in TARGETS:
            started = time.perf_counter()
            if not await _request(sessions[target], user, single.bases[target], endpoint, target):
                raise BenchError(f"{endpoint} at {target} failed")
            if index >= WARMUP_REQUESTS:
                samples[target].append((time.perf_counter() - started) * 1000)
    return {target: Latency.of(times) for target, times in samples.items()}


async def _throughput(
    single: _Single,
    ca_cert: Path,
    target: str,
    endpoint: str,
    seconds: float,
) -> Rate:
    """Requests per second of all users at once against ``target`` for ``seconds``."""
    base = single.bases[target]
    warmup = min(1.0, seconds / 5)
    done = errors = 0
    sessions = [_session(ca_cert) for _ in single.users]
    parts = {"Synapse": single.synapse_pid, "bench client": None}
    if target != DIRECT:
        parts["relay"] = single.relay_pids[target]
    cpu: dict[str, float] = {}
    try:
        begin = time.perf_counter()
        measure_from, end = begin + warmup, begin + warmup + seconds

        async def account() -> None:
            await asyncio.sleep(warmup)
            started = {name: cpu_seconds(pid) for name, pid in parts.items()}
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            cpu.update({name: cpu_seconds(pid) - started[name] for name, pid in parts.items()})

        async def client(session: aiohttp.ClientSession, user: _User) -> None:
            nonlocal done, errors
            while time.perf_counter() < end:
                try:
                    ok = await _request(session, user, base, endpoint, f"tp-{target[0]}")
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if measure_from <= time.perf_counter() <= end:
                    done += ok
                    errors += not ok

        await asyncio.gather(
            account(), *(client(s, u) for s, u in zip(sessions, single.users, strict=True))
        )
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    return Rate(done, errors, seconds, cpu)


async def _single_stack(config: TimkitConfig, children: Processes, clients: int) -> _Single:
    """Start phase 1's Synapse, the TCP relay and the two proxies; ``clients`` users."""
    hs_port, relay_port, plain_port, tls_port = free_port(), free_port(), free_port(), free_port()
    tls_url = f"https://{BIND}:{tls_port}"
    layout = Layout(config.data_dir)
    proxy, homeserver = _plan(config, SINGLE, tls_port, hs_port)
    children.start(f"homeserver-{SINGLE}", homeserver.argv)
    data_dir = _synapse_data(layout, SINGLE)
    names = {TCP_RELAY: "tcp-relay", PROXY: "proxy-http", PROXY_TLS: "proxy-tls"}
    children.start(
        names[TCP_RELAY],
        [sys.executable, "-c", TCP_RELAY_CODE, BIND, BIND, str(hs_port), str(relay_port)],
    )
    children.start(names[PROXY], _plain_proxy(proxy, config.data_dir / "proxy-http", plain_port))
    children.start(names[PROXY_TLS], proxy.argv)
    bases = {
        DIRECT: f"http://{BIND}:{hs_port}",
        TCP_RELAY: f"http://{BIND}:{relay_port}",
        PROXY: f"http://{BIND}:{plain_port}",
        PROXY_TLS: tls_url,
    }
    ca_cert = layout.ca_cert
    await _wait_healthy(children, f"homeserver-{SINGLE}", bases[DIRECT] + "/health", ca_cert)
    await _wait_healthy(children, names[TCP_RELAY], bases[TCP_RELAY] + "/health", ca_cert)
    for target in PROXIES:
        await _wait_healthy(children, names[target], bases[target] + "/health", ca_cert, proxy=True)
    async with _session(ca_cert, 4) as http:
        secret = _shared_secret(data_dir)
        limit = asyncio.Semaphore(4)

        async def user(index: int) -> _User:
            async with limit:
                made = await _register(ca_cert, bases[DIRECT], SINGLE, secret, f"client{index}")
                room = await _call(
                    http,
                    "POST",
                    bases[DIRECT] + "/_matrix/client/v3/createRoom",
                    headers=made.auth(),
                    body={"preset": "private_chat"},
                )
                made.room_id = room["room_id"]
                return made

        users = await asyncio.gather(*(user(i) for i in range(clients)))
    return _Single(
        bases,
        list(users),
        {target: children.running[name].pid for target, name in names.items()},
        children.running[f"homeserver-{SINGLE}"].pid,
    )


async def _phase_single(
    config: TimkitConfig,
    *,
    gets: int,
    puts: int,
    clients: int,
    seconds: float,
) -> tuple[dict[str, dict[str, Latency]], dict[str, dict[str, Rate]], dict[str, Memory], int]:
    layout = Layout(config.data_dir)
    ca_cert = layout.ca_cert
    with processes(layout.logs) as children:
        single = await _single_stack(config, children, clients)
        await asyncio.sleep(1.0)  # let the proxies settle after start-up, then weigh them
        idle = {t: rss(single.relay_pids[t]) for t in PROXIES}
        uss = {t: int(psutil.Process(single.relay_pids[t]).memory_full_info().uss) for t in PROXIES}
        sessions = {target: _session(ca_cert) for target in TARGETS}
        try:
            latency = {
                VERSIONS: await _sequential(single, sessions, VERSIONS, gets),
                SEND: await _sequential(single, sessions, SEND, puts),
            }
        finally:
            await asyncio.gather(*(s.close() for s in sessions.values()))
        throughput: dict[str, dict[str, Rate]] = {}
        for endpoint in ENDPOINTS:
            throughput[endpoint] = {}
            for target in TARGETS:
                throughput[endpoint][target] = await _throughput(
                    single, ca_cert, target, endpoint, seconds
                )
        memory = {t: Memory(idle[t], rss(single.relay_pids[t]), uss[t]) for t in PROXIES}
        synapse_rss = rss(single.synapse_pid)
    return latency, throughput, memory, synapse_rss


# -- phase 2: cross-organisation delivery ------------------------------------------------------


@dataclass
class _Pair:
    """Sender ``alice`` at A and receiver ``bob`` at B, both in ``alice.room_id``."""

    name: str
    alice: _User
    bob: _User
    waiting: dict[str, asyncio.Future[float]] = field(default_factory=dict)

    async def watch(self, session: aiohttp.ClientSession) -> None:
        """Bob's sync loop: resolves :attr:`waiting` markers when their message arrives."""
        url = self.bob.base + "/_matrix/client/v3/sync"
        params = {"filter": SYNC_FILTER, "timeout": "0"}
        while True:
            async with session.get(url, params=params, headers=self.bob.auth()) as response:
                payload = await response.read()
                seen = time.perf_counter()
                if response.status != 200:
                    raise BenchError(f"{self.name}: /sync {response.status} {payload[:300]!r}")
            document = orjson.loads(payload)
            params = {"filter": SYNC_FILTER, "timeout": "30000", "since": document["next_batch"]}
            room = document.get("rooms", {}).get("join", {}).get(self.alice.room_id, {})
            for event in room.get("timeline", {}).get("events", []):
                body = event.get("content", {}).get("body")
                future = self.waiting.pop(body, None) if isinstance(body, str) else None
                if future is not None and not future.done():
                    future.set_result(seen)

    async def deliver(self, session: aiohttp.ClientSession) -> tuple[float, float]:
        """Send one message; milliseconds until Bob's sync returned it, and of the send."""
        marker = uuid.uuid4().hex
        arrived: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[marker] = arrived
        url = _send_url(self.alice, self.alice.base, marker)
        started = time.perf_counter()
        await _call(
            session,
            "PUT",
            url,
            headers=self.alice.auth(),
            body={"msgtype": "m.text", "body": marker},
        )
        sent = time.perf_counter()
        seen = await asyncio.wait_for(arrived, 60)
        return (seen - started) * 1000, (sent - started) * 1000


async def _make_pair(
    name: str,
    ca_cert: Path,
    sender: tuple[str, str, str],
    receiver: tuple[str, str, str],
) -> _Pair:
    """Register Alice at ``sender`` and Bob at ``receiver`` (base, server name, secret); Alice
    creates a room inviting Bob, Bob joins over federation."""
    alice = await _register(ca_cert, *sender, "alice")
    bob = await _register(ca_cert, *receiver, "bob")
    async with _session(ca_cert) as http:
        room = await _call(
            http,
            "POST",
            alice.base + "/_matrix/client/v3/createRoom",
            headers=alice.auth(),
            body={"preset": "private_chat", "invite": [bob.user_id]},
        )
        alice.room_id = room["room_id"]
        await _call(
            http,
            "POST",
            f"{bob.base}/_matrix/client/v3/join/{quote(alice.room_id, safe='')}",
            headers=bob.auth(),
            body={},
        )
    return _Pair(name, alice, bob)


async def _deliveries(
    pairs: list[_Pair], ca_cert: Path, messages: int
) -> tuple[dict[str, Latency], dict[str, Latency]]:
    """``messages`` deliveries per pair, the pairs interleaved message by message."""
    watchers = [_session(ca_cert) for _ in pairs]
    senders = [_session(ca_cert) for _ in pairs]
    tasks = [
        asyncio.create_task(pair.watch(session))
        for pair, session in zip(pairs, watchers, strict=True)
    ]
    totals: dict[str, list[float]] = {pair.name: [] for pair in pairs}
    sends: dict[str, list[float]] = {pair.name: [] for pair in pairs}
    try:
        for index in range(WARMUP_MESSAGES + messages):
            for pair, session in zip(pairs, senders, strict=True):
                done = asyncio.ensure_future(pair.deliver(session))
                finished, _ = await asyncio.wait(
                    [done, *tasks], return_when=asyncio.FIRST_COMPLETED
                )
                if done not in finished:
                    done.cancel()
                    for task in finished:
                        task.result()  # a watcher failed: raise its error
                    raise BenchError(f"{pair.name}: the /sync watcher stopped")
                total, send = done.result()
                if index >= WARMUP_MESSAGES:
                    totals[pair.name].append(total)
                    sends[pair.name].append(send)
                await asyncio.sleep(MESSAGE_PAUSE)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in [*watchers, *senders]))
    return (
        {name: Latency.of(times) for name, times in totals.items()},
        {name: Latency.of(times) for name, times in sends.items()},
    )


async def _phase_federation(
    config: TimkitConfig, messages: int
) -> tuple[dict[str, Latency], dict[str, Latency]]:
    layout = Layout(config.data_dir)
    pki = LocalPKI(layout.pki)
    ca_cert = layout.ca_cert
    ports = {org: (free_port(), free_port()) for org in (ORG_A, ORG_B)}
    routes = NameTable(layout.names_file)
    for org, (inbound, _) in ports.items():
        routes.set(org, f"{BIND}:{inbound}")
    with processes(layout.logs) as children:
        for org, (inbound, hs_port) in ports.items():
            proxy, homeserver = _plan(config, org, inbound, hs_port)
            children.start(f"proxy-{org}", proxy.argv)
            children.start(f"homeserver-{org}", homeserver.argv)
        for org, (inbound, hs_port) in ports.items():
            await _wait_healthy(
                children, f"homeserver-{org}", f"http://{BIND}:{hs_port}/health", ca_cert
            )
            await _wait_healthy(
                children, f"proxy-{org}", f"https://{BIND}:{inbound}/health", ca_cert, proxy=True
            )
        work = config.data_dir
        direct_ports = free_port(), free_port()
        localhost = pki.ensure_server_cert("localhost", list(LOOPBACK_NAMES))
        template = _synapse_data(layout, ORG_A) / "homeserver.yaml"
        direct: list[tuple[str, str, str]] = []
        for index, port in enumerate(direct_ports):
            name = f"direct-{index}"
            synapse_yaml = _direct_yaml(template, work / name, port, localhost, layout.ca_cert)
            children.start(
                f"homeserver-{name}",
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(synapse_yaml)],
            )
            base = f"https://localhost:{port}"
            direct.append((base, f"localhost:{port}", _shared_secret(work / name)))
        for index, (base, _, _) in enumerate(direct):
            await _wait_healthy(children, f"homeserver-direct-{index}", base + "/health", ca_cert)
        proxied = [
            (f"https://{BIND}:{ports[org][0]}", org, _shared_secret(_synapse_data(layout, org)))
            for org in (ORG_A, ORG_B)
        ]
        pairs = [
            await _make_pair(PROXIED, ca_cert, proxied[0], proxied[1]),
            await _make_pair(FEDERATED, ca_cert, direct[0], direct[1]),
        ]
        return await _deliveries(pairs, ca_cert, messages)


# -- entry point ------------------------------------------------------------------------------


async def _bench(
    work: Path, *, gets: int, puts: int, clients: int, seconds: float, messages: int
) -> MessengerProxyBenchResult:
    load_at_start = os.getloadavg()[0]
    layout = Layout(work)
    pki = LocalPKI(layout.pki)
    pki.ensure_ca()
    layout.proxies_token.parent.mkdir(parents=True, exist_ok=True)
    layout.proxies_token.write_text(RD_TOKEN, "utf-8")
    rd_cert = pki.ensure_server_cert("rd", list(LOOPBACK_NAMES))
    federation_list = _signed_list(pki, [SINGLE, ORG_A, ORG_B])
    async with running_app(
        _rd_app(federation_list), BIND, 0, server_ssl_context(rd_cert)
    ) as rd_runner:
        config = _bench_config(work, int(rd_runner.addresses[0][1]))
        latency, throughput, memory, synapse_rss = await _phase_single(
            config, gets=gets, puts=puts, clients=clients, seconds=seconds
        )
        delivery, send = await _phase_federation(config, messages)
    return MessengerProxyBenchResult(
        gets=gets,
        puts=puts,
        clients=clients,
        seconds=seconds,
        messages=messages,
        latency=latency,
        throughput=throughput,
        delivery=delivery,
        send=send,
        memory=memory,
        synapse_rss=synapse_rss,
        load=(load_at_start, os.getloadavg()[0]),
    )


def bench_proxy(
    *,
    gets: int = 1000,
    puts: int = 300,
    clients: int = 16,
    seconds: float = 5.0,
    messages: int = 30,
    keep: Path | None = None,
) -> MessengerProxyBenchResult:
    """Run the benchmark (see the module docstring) in a temporary directory.

    Args:
        gets: sequential ``GET versions`` per target.
        puts: sequential ``PUT send`` per target.
        clients: concurrent clients in the throughput phases.
        seconds: measured duration of each throughput phase.
        messages: cross-organisation deliveries per path.
        keep: run in this directory instead (kept afterwards, with the processes' logs).

    Raises:
        BenchError: when a process fails to start or a request is refused.
    """

    def run(work: Path) -> MessengerProxyBenchResult:
        return asyncio.run(
            _bench(work, gets=gets, puts=puts, clients=clients, seconds=seconds, messages=messages)
        )

    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return run(keep)
    with tempfile.TemporaryDirectory(prefix="timkit-bench-proxy-") as tmp:
        return run(Path(tmp))
