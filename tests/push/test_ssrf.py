"""The SSRF guard: non-public targets refused unless allowed, names vetted at connect time."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.push.fakes import FakePushService
from timkit.core.errors import ConfigError
from timkit.push.backends.base import PushkeyRejected, TemporaryPushError, parse_retry_after
from timkit.push.config import OutboundConfig
from timkit.push.ssrf import (
    AllowListedResolver,
    EndpointNotAllowed,
    GuardedResolver,
    OutboundClient,
    OutboundGuard,
    OutboundRefused,
    RefusedAddress,
    parse_networks,
    parse_origins,
)

DEFAULT = OutboundGuard()
LOOPBACK = OutboundGuard(parse_networks(["127.0.0.0/8", "::1/128"]))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not DEFAULT.allows(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.allows(ipaddress.ip_address(address))


def test_allowed_networks_open_exactly_those_ranges() -> None:
    assert LOOPBACK.allows(ipaddress.ip_address("127.0.0.1"))
    assert LOOPBACK.allows(ipaddress.ip_address("::1"))
    assert LOOPBACK.allows(ipaddress.ip_address("::ffff:127.0.0.2"))
    assert not LOOPBACK.allows(ipaddress.ip_address("10.0.0.1"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/push",
        "https://10.0.0.7/push",
        "https://[::1]/push",
        "http://[::ffff:192.168.0.1]/x",
        "ftp://push.example.com/x",
        "file:///etc/passwd",
        "https:///no-host",
        "not a url",
    ],
)
def test_literal_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        DEFAULT.check_url(url)


def test_check_url_accepts_public_literals_and_names() -> None:
    assert DEFAULT.check_url("https://93.184.216.34/p").host == "93.184.216.34"
    assert DEFAULT.check_url("http://push.example.com/p").host == "push.example.com"
    assert LOOPBACK.check_url("http://127.0.0.1:1/p").port == 1


def test_allowed_endpoints_are_host_globs() -> None:
    patterns = ("*.push.example.com", "fcm.googleapis.com")
    assert DEFAULT.check_url("https://eu.push.example.com/x", patterns)
    assert DEFAULT.check_url("https://FCM.googleapis.com./x", patterns)
    for url in ("https://push.example.com.evil.test/x", "https://evil.test/fcm.googleapis.com"):
        with pytest.raises(EndpointNotAllowed, match="allowed_endpoints"):
            DEFAULT.check_url(url, patterns)


def test_malformed_allowed_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"outbound\.allowed_networks\.1"):
        parse_networks(["127.0.0.0/8", "not-a-network"])


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


async def test_name_resolving_to_loopback_is_refused_at_connect(
    push_service: FakePushService,
) -> None:
    client = OutboundClient.from_config(OutboundConfig())
    try:
        with pytest.raises(OutboundRefused, match="localhost resolves to"):
            await client.post(f"http://localhost:{push_service.port}/push/1", b"{}", {})
        with pytest.raises(OutboundRefused, match=r"not in outbound\.allowed_origins"):
            await client.post(push_service.url(), b"{}", {})
    finally:
        await client.close()
    assert push_service.requests == []


async def test_loopback_allowed_by_config_is_reached(push_service: FakePushService) -> None:
    config = OutboundConfig(allowed_networks=("127.0.0.0/8", "::1/128"))
    client = OutboundClient.from_config(config)
    try:
        by_name = await client.post(f"http://localhost:{push_service.port}/push/1", b"{}", {})
        by_address = await client.post(push_service.url(), b"{}", {})
    finally:
        await client.close()
    assert [by_name.status, by_address.status] == [201, 201]
    assert len(push_service.requests) == 2


async def test_redirects_are_not_followed(push_service: FakePushService) -> None:
    push_service.preload("/push/1", (307, {"Location": push_service.url("/elsewhere")}))
    client = OutboundClient.from_config(OutboundConfig(allowed_networks=("127.0.0.0/8",)))
    try:
        response = await client.post(push_service.url(), b"{}", {})
    finally:
        await client.close()
    assert response.status == 307
    assert [r.path for r in push_service.requests] == ["/push/1"]


async def test_connection_refused_is_temporary(push_service: FakePushService) -> None:
    client = OutboundClient.from_config(OutboundConfig(allowed_networks=("127.0.0.0/8",)))
    try:
        with pytest.raises(TemporaryPushError, match="cannot connect"):
            await client.post("http://127.0.0.1:1/push", b"{}", {})
    finally:
        await client.close()


RECEIVER = OutboundGuard(allowed_origins=parse_origins(["https://127.0.0.1:8429"]))


def test_refused_endpoints_are_rejected_pushkeys() -> None:
    """A refused endpoint can never be served: the dispatcher rejects its pushkey."""
    assert issubclass(OutboundRefused, PushkeyRejected)
    assert not issubclass(EndpointNotAllowed, PushkeyRejected)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8429/wp/abc",
        "https://127.0.0.1:8429",
        "HTTPS://127.0.0.1:8429/up/abc?x=1",
        "https://127.0.0.1:08429/up/abc",
    ],
)
def test_the_allowed_origin_is_allowed_exactly(url: str) -> None:
    assert RECEIVER.vet(url).allow_listed


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8430/up/x",  # another port
        "https://127.0.0.1/up/x",  # the default port 443
        "http://127.0.0.1:8429/up/x",  # another scheme
        "https://127.0.0.2:8429/up/x",  # another loopback address
        "https://[::1]:8429/up/x",
        "https://[0:0:0:0:0:0:0:1]:8429/up/x",
        "https://[::ffff:127.0.0.1]:8429/up/x",  # IPv4-mapped IPv6
        "https://[::ffff:7f00:1]:8429/up/x",
        "https://[::127.0.0.1]:8429/up/x",  # IPv4-compatible IPv6
        "https://0.0.0.0:8429/up/x",
        "https://[::]:8429/up/x",
    ],
)
def test_other_loopback_origins_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match=r"not in outbound\.allowed_origins"):
        RECEIVER.vet(url)


@pytest.mark.parametrize(
    "host",
    [
        "127.1",
        "127.0.1",
        "2130706433",  # decimal
        "0x7f000001",  # hexadecimal
        "0x7f.0.0.1",
        "0177.0.0.1",  # octal
        "017700000001",
        "127.0.0.01",
        "127.0.0.1.",  # trailing dot
        "%31%32%37.0.0.1",  # percent-encoded
        "example.0x10",
        "[::1%25lo]",  # IPv6 zone
    ],
)
def test_numeric_and_encoded_host_spellings_are_refused(host: str) -> None:
    with pytest.raises(OutboundRefused, match="endpoint refused: host"):
        RECEIVER.vet(f"https://{host}:8429/up/x")


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ntfy-token-1234",
        "",
        "https://push.example.com/up x",
        "https://push.example.com/\n",
        "https://push.exämple.com/up",
        "https://user@push.example.com/up",
        "https://:pw@push.example.com/up",
        "mailto:push@example.com",
        "//push.example.com/up",
        "https://push.example.com:0/up",
    ],
)
def test_non_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match="endpoint refused"):
        RECEIVER.vet(url)


def test_names_are_left_to_the_resolver_unless_allow_listed() -> None:
    target = RECEIVER.vet("https://localhost:8429/up/x")
    assert not target.allow_listed  # its addresses are vetted when connecting
    named = OutboundGuard(allowed_origins=parse_origins(["https://Push.Local.:8429"]))
    assert named.vet("https://push.local:8429/up/x").allow_listed
    assert named.vet("https://PUSH.LOCAL.:8429/up/x").allow_listed
    assert not named.vet("https://push.local:8430/up/x").allow_listed
    with pytest.raises(OutboundRefused):
        named.vet("https://127.0.0.1:8429/up/x")


def test_ipv6_origins_compare_as_addresses() -> None:
    guard = OutboundGuard(allowed_origins=parse_origins(["https://[::1]:8429"]))
    assert guard.vet("https://[0:0::1]:8429/up/x").allow_listed
    with pytest.raises(OutboundRefused):
        guard.vet("https://127.0.0.1:8429/up/x")


@pytest.mark.parametrize(
    ("origin", "why"),
    [
        ("https://127.0.0.1:8429/up", "scheme://host"),
        ("https://127.0.0.1:8429?x", "scheme://host"),
        ("ftp://127.0.0.1", "http"),
        ("127.0.0.1:8429", "http"),
        ("https://user@127.0.0.1:8429", "user information"),
        ("https://127.1:8429", "dotted-quad"),
        ("https://0.0.0.0:8429", "not an address to send to"),
        ("https://[ff02::1]:8429", "not an address to send to"),
    ],
)
def test_malformed_allowed_origin_is_a_config_error(origin: str, why: str) -> None:
    with pytest.raises(ConfigError, match=rf"outbound\.allowed_origins\.1: .*{why}"):
        parse_origins(["https://127.0.0.1:8429", origin])


class StaticResolver(AbstractResolver):
    """Answers every name with fixed addresses (a DNS name resolving to loopback)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "addresses", [("127.0.0.1",), ("93.184.216.34", "127.0.0.1"), ("::1",), ("::ffff:127.0.0.1",)]
)
async def test_a_dns_name_resolving_to_loopback_is_refused(addresses: tuple[str, ...]) -> None:
    resolver = GuardedResolver(RECEIVER, StaticResolver(*addresses))
    with pytest.raises(RefusedAddress, match=r"push\.evil\.test resolves to"):
        await resolver.resolve("push.evil.test", 8429)


async def test_a_dns_name_resolving_to_a_public_address_is_resolved() -> None:
    resolver = GuardedResolver(RECEIVER, StaticResolver("93.184.216.34"))
    [result] = await resolver.resolve("push.example.com", 443)
    assert result["host"] == "93.184.216.34"


async def test_the_allow_listed_resolver_serves_only_allow_listed_names_and_ports() -> None:
    origins = parse_origins(["https://push.local:8429", "https://127.0.0.1:8429"])
    resolver = AllowListedResolver(origins, StaticResolver("10.0.0.5"))
    assert [r["host"] for r in await resolver.resolve("PUSH.local.", 8429)] == ["10.0.0.5"]
    for host, port in (("push.local", 8430), ("other.local", 8429), ("127.0.0.1", 8429)):
        with pytest.raises(RefusedAddress, match="not an allow-listed origin"):
            await resolver.resolve(host, port)


async def test_only_the_allowed_origin_of_a_loopback_service_is_reached(
    push_service: FakePushService,
) -> None:
    port = push_service.port
    client = OutboundClient.from_config(
        OutboundConfig(allowed_origins=(f"http://127.0.0.1:{port}",))
    )
    try:
        allowed = await client.post(push_service.url("/up/ok"), b"{}", {})
        for url in (
            f"http://localhost:{port}/up/x",  # a name resolving to loopback
            f"https://127.0.0.1:{port}/up/x",
            f"http://127.1:{port}/up/x",
            f"http://[::ffff:127.0.0.1]:{port}/up/x",
            f"http://2130706433:{port}/up/x",
        ):
            with pytest.raises(OutboundRefused):
                await client.post(url, b"{}", {})
    finally:
        await client.close()
    assert allowed.status == 201
    assert [r.path for r in push_service.requests] == ["/up/ok"]


async def test_an_allow_listed_name_is_reached_whatever_it_resolves_to(
    push_service: FakePushService,
) -> None:
    port = push_service.port
    client = OutboundClient.from_config(
        OutboundConfig(allowed_origins=(f"http://localhost:{port}",))
    )
    try:
        response = await client.post(f"http://localhost:{port}/up/ok", b"{}", {})
        with pytest.raises(OutboundRefused):
            await client.post(push_service.url("/up/x"), b"{}", {})
    finally:
        await client.close()
    assert response.status == 201
    assert [r.path for r in push_service.requests] == ["/up/ok"]
