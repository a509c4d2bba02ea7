"""The SSRF guard: device-supplied URLs (WebPush, UnifiedPush) reach public hosts only.

A pusher's endpoint is chosen by whoever registered the pusher, so the gateway must not let
it point into the operator's network. :class:`OutboundClient` is the one way the URL
backends send:

* the URL must be ``http://`` or ``https://`` with a host, and that host must match one of
  the app's ``allowed_endpoints`` globs when it has any;
* an IP-literal host is checked directly; a name is resolved by :class:`GuardedResolver`,
  which refuses the name when *any* of its addresses is loopback, private, link-local,
  multicast, reserved or unspecified (not globally routable), unless the address lies in
  ``outbound.allowed_networks``. The connector connects to the addresses it vetted, so a
  second DNS answer cannot slip in between check and connect;
* redirects are never followed (UnifiedPush SERV_1.2.0 forbids it; a redirect would
  bypass the check).

A refused target raises :class:`OutboundRefused`, a :class:`PermanentPushError`: not retried,
and — as Sygnal does for endpoints outside ``allowed_endpoints`` — not rejected, so a pusher
survives until the operator decides (a config change may allow it).
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDictProxy
from yarl import URL

from timkit.core.errors import ConfigError
from timkit.core.web import read_limited
from timkit.push.backends.base import PermanentPushError, TemporaryPushError, parse_retry_after
from timkit.push.config import OutboundConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_RESPONSE_BODY = 16 * 1024
"""Bytes of a push service's response body read (and discarded) to keep the connection."""


class OutboundRefused(PermanentPushError):
    """The device's URL points somewhere the gateway must not send to."""


class RefusedAddress(OSError):
    """Raised inside the connector when a name resolves to a refused address."""


def parse_networks(
    networks: Sequence[str], *, path: str = "outbound.allowed_networks"
) -> tuple[IPNetwork, ...]:
    """``networks`` as CIDRs.

    Raises:
        ConfigError: naming the first entry that is not a network.
    """
    parsed: list[IPNetwork] = []
    for index, text in enumerate(networks):
        try:
            parsed.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ConfigError(str(exc), path=f"{path}.{index}") from None
    return tuple(parsed)


class OutboundGuard:
    """Decides which addresses and URLs the gateway may send to.

    Args:
        allowed_networks: networks allowed although not globally routable (the local run
            allows loopback).
    """

    def __init__(self, allowed_networks: Sequence[IPNetwork] = ()) -> None:
        self.allowed_networks = tuple(allowed_networks)

    @classmethod
    def from_config(cls, config: OutboundConfig) -> OutboundGuard:
        """The guard of ``[outbound]``; ConfigError names a malformed network."""
        return cls(parse_networks(config.allowed_networks))

    def allows(self, address: IPAddress) -> bool:
        """Whether ``address`` is public, or inside an allowed network."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return True
        return address.is_global and not (
            address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or address.is_loopback
            or address.is_link_local
            or address.is_private
        )

    def check_url(self, url: str, allowed_endpoints: Sequence[str] = ()) -> URL:
        """``url`` parsed, when its scheme and host may be sent to.

        Names are only matched here; their addresses are vetted by :class:`GuardedResolver`
        when the connection is made.

        Raises:
            OutboundRefused: not ``http(s)``, no host, a host outside ``allowed_endpoints``,
                or an IP literal the guard refuses.
        """
        try:
            parsed = URL(url)
        except (TypeError, ValueError):
            raise OutboundRefused("endpoint is not a URL") from None
        host = parsed.host
        if parsed.scheme not in ("http", "https") or not host:
            raise OutboundRefused("endpoint is not an http(s) URL with a host")
        host = host.lower().rstrip(".")
        if allowed_endpoints and not any(
            fnmatch.fnmatchcase(host, pattern.lower()) for pattern in allowed_endpoints
        ):
            raise OutboundRefused(f"endpoint host {host} is not in allowed_endpoints")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return parsed
        if not self.allows(literal):
            raise OutboundRefused(f"endpoint address {literal} is not allowed")
        return parsed


class GuardedResolver(AbstractResolver):
    """Resolves with ``resolver`` and refuses names that have a refused address.

    Args:
        guard: the address policy.
        resolver: the resolver doing the lookup (aiohttp's default when None).
    """

    def __init__(self, guard: OutboundGuard, resolver: AbstractResolver | None = None) -> None:
        self.guard = guard
        self._resolver = resolver or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of ``host``.

        Raises:
            RefusedAddress: one of the addresses is not allowed (aiohttp wraps it in
                ``ClientConnectorDNSError``).
        """
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            if not self.guard.allows(address):
                raise RefusedAddress(f"{host.rstrip('.')} resolves to {address}, not allowed")
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._resolver.close()


@dataclass(frozen=True)
class PushResponse:
    """What a push service answered (the body is read and dropped)."""

    status: int
    headers: CIMultiDictProxy[str]

    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds (delta or HTTP date); None when absent or malformed."""
        return parse_retry_after(self.headers.get("Retry-After"))


class OutboundClient:
    """POSTs to device-supplied URLs through the guard; one pooled session per app.

    Args:
        guard: the address policy.
        ca_file: extra CA bundle trusted besides the system's (the local CA).
        limit: most connections open at once.
    """

    def __init__(
        self, guard: OutboundGuard, *, ca_file: str | None = None, limit: int = 100
    ) -> None:
        self.guard = guard
        context = ssl.create_default_context()
        if ca_file is not None:
            context.load_verify_locations(cafile=ca_file)
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(guard), ssl=context, limit=limit, limit_per_host=0
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            trust_env=False,
        )

    @classmethod
    def from_config(cls, config: OutboundConfig, *, limit: int = 100) -> OutboundClient:
        """A client for ``[outbound]``."""
        ca_file = str(config.ca_file) if config.ca_file is not None else None
        return cls(OutboundGuard.from_config(config), ca_file=ca_file, limit=limit)

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        allowed_endpoints: Sequence[str] = (),
    ) -> PushResponse:
        """POST ``body`` to ``url`` without following redirects.

        Raises:
            OutboundRefused: the guard refused the URL or an address of its host.
            TemporaryPushError: the connection failed or broke (worth retrying).
        """
        target = self.guard.check_url(url, allowed_endpoints)
        try:
            async with self.session.post(
                target, data=body, headers=dict(headers), allow_redirects=False
            ) as response:
                try:
                    await read_limited(response, MAX_RESPONSE_BODY)
                except ValueError:
                    response.close()
                return PushResponse(response.status, response.headers)
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                raise OutboundRefused(str(exc.os_error)) from None
            raise TemporaryPushError(f"cannot resolve {target.host}") from None
        except aiohttp.ClientConnectorError as exc:
            raise TemporaryPushError(f"cannot connect to {target.host}: {exc.strerror}") from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            raise TemporaryPushError(f"{target.host}: {type(exc).__name__}") from None

    async def close(self) -> None:
        """Close the session and its connections."""
        await self.session.close()
