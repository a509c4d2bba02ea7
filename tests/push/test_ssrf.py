"""The SSRF guard: non-public targets refused unless allowed, names vetted at connect time."""

from __future__ import annotations

import ipaddress

import pytest

from tests.push.fakes import FakePushService
from timkit.core.errors import ConfigError
from timkit.push.backends.base import TemporaryPushError, parse_retry_after
from timkit.push.config import OutboundConfig
from timkit.push.ssrf import (
    OutboundClient,
    OutboundGuard,
    OutboundRefused,
    parse_networks,
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
        with pytest.raises(OutboundRefused, match="allowed_endpoints"):
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
        with pytest.raises(OutboundRefused, match="not allowed"):
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
