"""``timkit bench client``: the TI-M client SDK end to end on a fresh two-service federation.

* **Login** (AF_10057): ``logins`` logins of one actor, each a new device of
  :class:`~timkit.client.session.TimClient` — discovery, password login through the
  Messenger-Proxy, OpenID token, the federation check at the VZD (``/tim-authenticate``),
  crypto store, device keys upload. Baseline: the bare ``POST /login`` through the same
  proxy, in the same run.
* **Message**: alice (A) → bob (B) across organisations, one message at a time, alternately
  in an encrypted and an unencrypted 1:1 chat; timed from before the send to the decrypted
  event in bob's background sync (same clock). The goal: encrypted p50 ≤ 1.2 x unencrypted.
* **Load**: ``actors`` actors, half on each service, in cross-organisation pairs with
  encrypted 1:1 chats; every actor sends ``messages`` messages to its partner, all at once.
  Counted: messages that arrived decrypted, decryption failures, wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from timkit.bench.harness import Latency
from timkit.bench.machine import report_head
from timkit.bench.up import bench_config
from timkit.client import events as ev
from timkit.client.options import ClientOptions
from timkit.client.profile import Profile
from timkit.client.session import TimClient
from timkit.core.errors import TimkitError
from timkit.core.http import async_client
from timkit.runtime import control
from timkit.runtime.actors import client_options
from timkit.runtime.backend import read_records
from timkit.runtime.config import TimkitConfig
from timkit.runtime.layout import Layout
from timkit.runtime.plan import endpoints
from timkit.runtime.users import add_user
from timkit.sdk.push import login_password

PASSWORD = "bench-password"  # noqa: S105 - a throwaway user of a temporary federation
WARMUP = 3
DELIVERY_TIMEOUT = 300.0


@dataclass(frozen=True)
class ClientBenchResult:
    """Samples in milliseconds and the load figures; see the module docstring."""

    login_ms: list[float]
    bare_login_ms: list[float]
    encrypted_ms: list[float]
    plain_ms: list[float]
    actors: int
    messages: int
    delivered: int
    decryption_failures: int
    load_seconds: float

    def markdown(self) -> str:
        """The result as a Markdown section for ``docs/benchmarks.md``."""
        login, bare = Latency.of(self.login_ms), Latency.of(self.bare_login_ms)
        enc, plain = Latency.of(self.encrypted_ms), Latency.of(self.plain_ms)
        ratio = enc.p50 / plain.p50 if plain.p50 else float("inf")
        sent = self.actors * self.messages
        rate = self.delivered / self.load_seconds if self.load_seconds else 0.0
        lines = [
            *report_head("client"),
            "| measurement | p50 | p99 | max | n |",
            "|---|---|---|---|---|",
            f"| SDK login incl. federation check, new device (ms) | {login.p50:.1f} "
            f"| {login.p99:.1f} | {login.max:.1f} | {login.count} |",
            f"| baseline: bare `POST /login` through the proxy (ms) | {bare.p50:.1f} "
            f"| {bare.p99:.1f} | {bare.max:.1f} | {bare.count} |",
            f"| A → B encrypted, send → decrypted at B (ms) | {enc.p50:.1f} | {enc.p99:.1f} "
            f"| {enc.max:.1f} | {enc.count} |",
            f"| A → B unencrypted, send → at B (ms) | {plain.p50:.1f} | {plain.p99:.1f} "
            f"| {plain.max:.1f} | {plain.count} |",
            "",
            f"Load: {self.actors} actors in cross-organisation pairs, {self.messages} messages "
            f"each, sent at once: {self.delivered}/{sent} delivered decrypted in "
            f"{self.load_seconds:.1f} s ({rate:.0f}/s), {self.decryption_failures} "
            "decryption failures.",
            "",
            "| goal | measured | met |",
            "|---|---|---|",
            f"| login incl. federation check p50 ≤ 300 ms | {login.p50:.1f} ms "
            f"| {_met(login.p50 <= 300)} |",
            f"| encrypted p50 ≤ 1.2 x unencrypted | {ratio:.2f} x | {_met(ratio <= 1.2)} |",
            f"| {self.actors} actors x {self.messages}: all delivered, 0 decryption failures "
            f"| {self.delivered}/{sent}, {self.decryption_failures} "
            f"| {_met(self.delivered == sent and self.decryption_failures == 0)} |",
        ]
        return "\n".join(lines)


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


def bench_client(
    *, logins: int = 20, messages: int = 30, actors: int = 50, load_messages: int = 20
) -> ClientBenchResult:
    """Run the three phases on a fresh two-service federation; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="timkit-bench-") as tmp:
        config = bench_config(Path(tmp) / "var", 2)
        control.up(config)
        try:
            return asyncio.run(
                _phases(config, Path(tmp) / "profiles", logins, messages, actors, load_messages)
            )
        finally:
            control.down(config)


async def _phases(
    config: TimkitConfig, home: Path, logins: int, messages: int, actors: int, load: int
) -> ClientBenchResult:
    options = client_options(config, device_name="timkit bench")
    a, b = (s.domain for s in read_records(Layout(config.data_dir)))
    sdk, bare = await _logins(config, options, home, a, logins)
    encrypted, plain = await _messages(config, options, home, a, b, messages)
    delivered, failures, seconds = await _load(config, options, home, a, b, actors, load)
    return ClientBenchResult(
        sdk, bare, encrypted, plain, actors, load, delivered, failures, seconds
    )


async def _actor(
    config: TimkitConfig, options: ClientOptions, home: Path, domain: str, name: str
) -> TimClient:
    made = await add_user(config, domain, name, PASSWORD)
    return await TimClient.login(Profile(name, home), options, made.user_id, PASSWORD)


async def _logins(
    config: TimkitConfig, options: ClientOptions, home: Path, domain: str, count: int
) -> tuple[list[float], list[float]]:
    made = await add_user(config, domain, "login", PASSWORD)
    (service,) = [s for s in read_records(Layout(config.data_dir)) if s.domain == domain]
    base = endpoints(config, service).client_url
    sdk: list[float] = []
    bare: list[float] = []
    async with async_client(options.ca_file) as http:
        for i in range(count + WARMUP):
            begin = time.perf_counter()
            client = await TimClient.login(Profile("login", home), options, made.user_id, PASSWORD)
            took = (time.perf_counter() - begin) * 1000
            await client.logout()
            begin = time.perf_counter()
            token = await login_password(http, base, "login", PASSWORD)
            bare_took = (time.perf_counter() - begin) * 1000
            await http.post(
                f"{base}/_matrix/client/v3/logout", headers={"Authorization": f"Bearer {token}"}
            )
            if i >= WARMUP:
                sdk.append(took)
                bare.append(bare_took)
    return sdk, bare


async def _pair(alice: TimClient, bob: TimClient, *, encrypted: bool) -> str:
    """A 1:1 chat alice → bob that both joined, bob's Freigabeliste allowing alice."""
    room_id = await alice.rooms.create(bob.user_id, direct=True, encrypted=encrypted)
    await bob.wait_for(_invite(room_id), timeout=60)
    await bob.rooms.join(room_id, direct_with=alice.user_id)
    await alice.wait_for(_joined(room_id, bob.user_id), timeout=60)
    return room_id


async def _allow(invitee: TimClient, inviter: TimClient) -> None:
    await invitee.contacts.add(inviter.user_id, inviter.user_id)


async def _messages(
    config: TimkitConfig, options: ClientOptions, home: Path, a: str, b: str, count: int
) -> tuple[list[float], list[float]]:
    alice = await _actor(config, options, home, a, "alice")
    bob = await _actor(config, options, home, b, "bob")
    try:
        await _allow(bob, alice)
        alice.start()
        bob.start()
        rooms = {
            True: await _pair(alice, bob, encrypted=True),
            False: await _pair(alice, bob, encrypted=False),
        }
        samples: dict[bool, list[float]] = {True: [], False: []}
        for i in range(count + WARMUP):
            for encrypted in (True, False):
                begin = time.perf_counter()
                event_id = await alice.messages.send_text(rooms[encrypted], f"bench {i}")
                got = await bob.wait_for(_message(event_id), timeout=60)
                took = (time.perf_counter() - begin) * 1000
                if got.encrypted != encrypted:
                    raise RuntimeError(f"{event_id}: encrypted={got.encrypted}")
                if i >= WARMUP:
                    samples[encrypted].append(took)
        return samples[True], samples[False]
    finally:
        await alice.close()
        await bob.close()


async def _load(
    config: TimkitConfig,
    options: ClientOptions,
    home: Path,
    a: str,
    b: str,
    actors: int,
    count: int,
) -> tuple[int, int, float]:
    pairs = actors // 2
    left = [await _actor(config, options, home, a, f"load-a{i}") for i in range(pairs)]
    right = [await _actor(config, options, home, b, f"load-b{i}") for i in range(pairs)]
    everyone = [*left, *right]
    try:
        await asyncio.gather(*(_allow(y, x) for x, y in zip(left, right, strict=True)))
        for client in everyone:
            client.start()
        rooms = await asyncio.gather(
            *(_pair(x, y, encrypted=True) for x, y in zip(left, right, strict=True))
        )
        partner = {**dict(zip(left, right, strict=True)), **dict(zip(right, left, strict=True))}
        room_of = {c: rooms[i % pairs] for i, c in enumerate(everyone)}
        begin = time.perf_counter()

        async def send_all(client: TimClient) -> None:
            for i in range(count):
                await client.messages.send_text(room_of[client], f"load {i}")

        async def receive_all(client: TimClient) -> int:
            sender = partner[client].user_id
            got: set[str] = set()

            def match(event: ev.Event) -> bool | None:
                if isinstance(event, ev.Message) and event.sender == sender and event.encrypted:
                    got.add(event.event_id)
                return True if len(got) >= count else None

            with contextlib.suppress(TimkitError):  # a timeout: the rest counts as undelivered
                await client.wait_for(match, timeout=DELIVERY_TIMEOUT)
            return len(got)

        _, received = await asyncio.gather(
            asyncio.gather(*(send_all(c) for c in everyone)),
            asyncio.gather(*(receive_all(c) for c in everyone)),
        )
        seconds = time.perf_counter() - begin
        failures = sum(c.decryption_failures for c in everyone)
        return sum(received), failures, seconds
    finally:
        await asyncio.gather(*(c.close() for c in everyone))


def _invite(room_id: str) -> Callable[[ev.Event], ev.Invite | None]:
    def match(event: ev.Event) -> ev.Invite | None:
        return event if isinstance(event, ev.Invite) and event.room_id == room_id else None

    return match


def _joined(room_id: str, user_id: str) -> Callable[[ev.Event], ev.Membership | None]:
    def match(event: ev.Event) -> ev.Membership | None:
        if isinstance(event, ev.Membership) and event.room_id == room_id:
            return event if event.user_id == user_id and event.membership == "join" else None
        return None

    return match


def _message(event_id: str) -> Callable[[ev.Event], ev.Message | None]:
    def match(event: ev.Event) -> ev.Message | None:
        return event if isinstance(event, ev.Message) and event.event_id == event_id else None

    return match
