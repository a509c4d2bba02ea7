"""``timkit bench push``: message-to-push latency and the Push-Gateway's throughput.

Latency: a fresh one-service federation (``timkit up`` in a temporary directory); ``a2``
has two pushers: a WebPush device at the local push receiver (through the Push-Gateway,
the real chain) and a bare notify sink inside the bench process (the baseline: when
Synapse itself hands the notification over). ``a1`` sends messages to ``a2`` one at a
time; each is timed from just before ``PUT …/send`` to its arrival at the receiver
(``received_at``, decrypted) and at the sink, on the same clock.

Throughput: concurrent ``POST /_matrix/push/v1/notify`` with one device each (unique
``event_id``s, so de-duplication does not shortcut), for a bounded time and count, through
the gateway to the receiver's WebPush and UnifiedPush endpoints; the baseline is the same
load posted directly to the receiver's UnifiedPush endpoint (the endpoint's own capacity).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from aiohttp import web

from timkit.bench.harness import Latency, Rate, cpu_seconds
from timkit.bench.machine import report_head
from timkit.bench.up import bench_config
from timkit.core.http import aiohttp_session, async_client
from timkit.core.web import running_app
from timkit.runtime import control
from timkit.runtime.backend import read_records
from timkit.runtime.config import TimkitConfig
from timkit.runtime.layout import Layout
from timkit.runtime.plan import PUSH_KIND, PUSH_RECEIVER_KIND, endpoints
from timkit.runtime.push_chain import (
    NOTIFY_PATH,
    UNIFIEDPUSH_APP,
    WEBPUSH_APP,
    gateway_url,
    receiver_url,
    vapid_public_key,
)
from timkit.runtime.users import add_user, subscribe_user
from timkit.sdk.push import set_pusher

PASSWORD = "bench-password"  # noqa: S105 - a throwaway user of a temporary federation
SINK_APP = "bench.sink"
MAX_NOTIFICATIONS = 50_000
"""Upper bound of notifications per throughput phase, whatever its duration."""


WEBPUSH_PHASE = "gateway → WebPush receiver (aes128gcm + VAPID)"
UNIFIEDPUSH_PHASE = "gateway → UnifiedPush receiver"
BASELINE_PHASE = "baseline: direct POST to the UnifiedPush receiver"


@dataclass(frozen=True)
class PushBenchResult:
    """Latencies in milliseconds and throughput phases; see the module docstring.

    ``cpu`` of each :class:`Rate` maps ``gateway`` and ``receiver`` to their CPU seconds.
    """

    messages: int
    chain_ms: list[float]
    sink_ms: list[float]
    clients: int
    rates: dict[str, Rate] = field(default_factory=dict)
    """Phase label → rate, in the order measured."""

    def markdown(self) -> str:
        """The result as a Markdown section for ``docs/benchmarks.md``."""
        chain, sink = Latency.of(self.chain_ms), Latency.of(self.sink_ms)
        chain50, sink50 = chain.p50, sink.p50
        through = self.rates[WEBPUSH_PHASE]
        lines = [
            *report_head("push"),
            f"Latency, {self.messages} messages sent one at a time (ms, from before "
            "`PUT …/send` to arrival):",
            "",
            "| path | p50 | p99 | max |",
            "|---|---|---|---|",
            f"| Synapse → Push-Gateway → WebPush receiver (decrypted) | {chain50:.1f} "
            f"| {chain.p99:.1f} | {chain.max:.1f} |",
            f"| baseline: Synapse → bare notify sink | {sink50:.1f} | {sink.p99:.1f} "
            f"| {sink.max:.1f} |",
            f"| added by gateway and delivery (p50) | {chain50 - sink50:+.1f} | | |",
            "",
            f"Throughput, {self.clients} concurrent clients, one device per notification:",
            "",
            "| phase | notifications | failed | seconds | per second | CPU per notification: "
            "gateway / receiver |",
            "|---|---|---|---|---|---|",
            *(
                f"| {label} | {r.done} | {r.failed} | {r.seconds:.1f} | {r.per_second:.0f} "
                f"| {_cpu_ms(r, 'gateway')} / {_cpu_ms(r, 'receiver')} |"
                for label, r in self.rates.items()
            ),
            "",
            "| goal | measured | met |",
            "|---|---|---|",
            f"| send → push p50 ≤ 100 ms | {chain50:.1f} ms | "
            f"{'yes' if chain50 <= 100 else 'no'} |",
            f"| gateway ≥ 1,000 notifications/s (WebPush, local endpoint) | "
            f"{through.per_second:.0f}/s | {'yes' if through.per_second >= 1000 else 'no'} |",
        ]
        return "\n".join(lines)


def _cpu_ms(rate: Rate, process: str) -> str:
    milliseconds = rate.cpu_ms.get(process)
    if milliseconds is None or not rate.done:
        return "-"
    return f"{milliseconds:.2f} ms"


class _Sink:
    """A bare Push Gateway API endpoint that records when each ``event_id`` arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future[float]] = {}

    async def notify(self, request: web.Request) -> web.Response:
        at = time.time()
        body = await request.json()
        event_id = body["notification"].get("event_id")
        if event_id:
            self.arrived[event_id] = at
            if (waiter := self._waiters.pop(event_id, None)) is not None:
                waiter.set_result(at)
        return web.json_response({"rejected": []})

    async def wait(self, event_id: str) -> float:
        if event_id in self.arrived:
            return self.arrived[event_id]
        waiter = self._waiters.setdefault(event_id, asyncio.get_running_loop().create_future())
        return await waiter

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(NOTIFY_PATH, self.notify)
        return app


async def _matrix(
    http: httpx.AsyncClient, method: str, url: str, token: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await http.request(
        method, url, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    if not response.is_success:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text}")
    return dict(response.json())


async def _receiver_push(
    http: httpx.AsyncClient, base: str, target: str, event_id: str, since: int
) -> tuple[float, int]:
    """Long-poll the receiver for ``event_id``; returns (received_at, last seq)."""
    async with asyncio.timeout(60):
        while True:
            response = await http.get(
                f"{base}/api/pushes", params={"since": since, "target": target, "wait": 30}
            )
            response.raise_for_status()
            for push in response.json()["pushes"]:
                since = max(since, push["seq"])
                if push["payload"].get("event_id") == event_id:
                    return float(push["received_at"]), since


async def _latency(config: TimkitConfig, messages: int) -> tuple[list[float], list[float]]:
    layout = Layout(config.data_dir)
    (service,) = read_records(layout)
    base = endpoints(config, service).client_url
    sink = _Sink()
    receiver = receiver_url(config)
    chain: list[float] = []
    direct: list[float] = []
    async with (
        async_client(layout.ca_cert, timeout=60.0) as http,
        running_app(sink.app(), config.runtime.bind, 0) as sink_runner,
    ):
        tokens = []
        for name in ("a1", "a2"):
            made = await add_user(config, service.domain, name, PASSWORD)
            assert made.access_token is not None  # a fresh federation: the user is new
            tokens.append(made.access_token)
        a1, a2 = tokens
        sink_port = int(sink_runner.addresses[0][1])
        a2_id = f"@a2:{service.domain}"
        room = await _matrix(
            http,
            "POST",
            f"{base}/_matrix/client/v3/createRoom",
            a1,
            {"invite": [a2_id], "is_direct": True},
        )
        room_id = str(room["room_id"])
        await _matrix(http, "POST", f"{base}/_matrix/client/v3/join/{quote(room_id)}", a2, {})
        # a2's WebPush device at the receiver, behind the Push-Gateway, as `timkit push
        # subscribe` gives it
        device = await subscribe_user(config, service.domain, "a2", PASSWORD)
        # the baseline sink is no Push-Gateway: its pusher is set at Synapse's loopback
        # listener, since the Messenger-Proxy lets pushers name only the gateway (issue 14)
        await set_pusher(
            http,
            f"http://{config.runtime.bind}:{service.homeserver_port}",
            a2,
            app_id=SINK_APP,
            pushkey="sink",
            gateway_url=f"http://{config.runtime.bind}:{sink_port}{NOTIFY_PATH}",
        )
        since = 0
        for i in range(messages + 3):  # the first three warm caches and connections
            begin = time.time()
            sent = await _matrix(
                http,
                "PUT",
                f"{base}/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/b{i}",
                a1,
                {"msgtype": "m.text", "body": f"bench {i}"},
            )
            event_id = str(sent["event_id"])
            (arrived, since), at_sink = await asyncio.gather(
                _receiver_push(http, receiver, device["subscription"], event_id, since),
                asyncio.wait_for(sink.wait(event_id), 60),
            )
            if i >= 3:
                chain.append((arrived - begin) * 1000)
                direct.append((at_sink - begin) * 1000)
    return chain, direct


def _notification(app_id: str, pushkey: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "notification": {
            "event_id": f"${uuid.uuid4().hex}",
            "room_id": "!bench:bench.tim.test",
            "prio": "high",
            "counts": {"unread": 1},
            "devices": [{"app_id": app_id, "pushkey": pushkey, "data": data}],
        }
    }


async def _load(
    clients: int,
    seconds: float,
    post: Callable[[], Awaitable[bool]],
    processes: dict[str, int],
) -> Rate:
    """``clients`` concurrent workers posting for ``seconds`` (or :data:`MAX_NOTIFICATIONS`);
    the CPU seconds of ``processes`` (label → pid) in that time."""
    done = failed = 0
    counter = itertools.count()
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < deadline and next(counter) < MAX_NOTIFICATIONS:
            if await post():
                done += 1
            else:
                failed += 1

    before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    begin = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.monotonic() - begin
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in processes.items()}
    return Rate(done, failed, elapsed, cpu)


async def _throughput(
    config: TimkitConfig, clients: int, seconds: float, processes: dict[str, int]
) -> dict[str, Rate]:
    layout = Layout(config.data_dir)
    receiver = receiver_url(config)
    notify = gateway_url(config) + NOTIFY_PATH
    # aiohttp's own default time-out (5 min for a whole request)
    async with aiohttp_session(layout.ca_cert, limit=clients * 2, timeout=300) as session:

        async def create(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with session.post(f"{receiver}{path}", json=body) as response:
                response.raise_for_status()
                return dict(await response.json())

        subscription = await create(
            "/api/webpush/subscriptions", {"application_server_key": vapid_public_key(layout)}
        )
        endpoint = await create("/api/unifiedpush/endpoints", {})
        webpush = (
            WEBPUSH_APP,
            subscription["keys"]["p256dh"],
            {"endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"]},
        )
        unifiedpush: tuple[str, str, dict[str, Any]] = (UNIFIEDPUSH_APP, endpoint["endpoint"], {})

        def via_gateway(device: tuple[str, str, dict[str, Any]]) -> Callable[[], Awaitable[bool]]:
            async def post() -> bool:
                async with session.post(notify, json=_notification(*device)) as response:
                    body = await response.json()
                    return response.status == 200 and not body.get("rejected")

            return post

        async def direct() -> bool:
            body = _notification(*unifiedpush)["notification"]
            body.pop("devices")
            async with session.post(endpoint["endpoint"], json=body) as response:
                await response.read()
                return response.status in (200, 201)

        rates: dict[str, Rate] = {}
        for label, post in (
            (WEBPUSH_PHASE, via_gateway(webpush)),
            (UNIFIEDPUSH_PHASE, via_gateway(unifiedpush)),
            (BASELINE_PHASE, direct),
        ):
            await _load(clients, min(1.0, seconds), post, processes)  # warm-up
            rates[label] = await _load(clients, seconds, post, processes)
    return rates


def bench_push(*, messages: int = 50, clients: int = 32, seconds: float = 5.0) -> PushBenchResult:
    """Run both phases on a fresh one-service federation; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="timkit-bench-") as tmp:
        config = bench_config(Path(tmp) / "var", 1)
        state = control.up(config).state
        pids = {c.kind: c.pid for c in state.components if c.pid is not None}
        processes = {"gateway": pids[PUSH_KIND], "receiver": pids[PUSH_RECEIVER_KIND]}
        try:
            chain, sink = asyncio.run(_latency(config, messages))
            rates = asyncio.run(_throughput(config, clients, seconds, processes))
        finally:
            control.down(config)
    return PushBenchResult(messages, chain, sink, clients, rates)
