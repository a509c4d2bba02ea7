"""The SSRF guard: device-supplied URLs (WebPush, UnifiedPush) reach public hosts only.

A pusher's endpoint is chosen by whoever registered the pusher, so the gateway must not let
it point into the operator's network. :class:`OutboundClient` is the one way the URL
backends send, and every URL passes :meth:`OutboundGuard.vet` first:

* the URL must be an absolute ``http://`` or ``https://`` URL of visible ASCII with a host
  and no user information. A host that ends in a number must be a plain dotted quad
  (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1`` and ``127.0.0.1.`` are refused:
  resolvers read them as IPv4 addresses that the check would not see); an IPv6 literal may
  not carry a zone; a name must consist of letters, digits, ``-`` and ``_`` labels;
* its **origin** (scheme, host, port; the port defaults by scheme) exactly on
  ``outbound.allowed_origins`` may be sent to whatever its address: that is how an
  operator opens one non-public endpoint (the local run's push receiver) without opening
  a network. The host is compared as spelled (IP literals as addresses, names lower-case
  without a trailing dot): ``https://localhost:8429`` does not match
  ``https://127.0.0.1:8429``, nor does ``[::ffff:127.0.0.1]``;
* any other origin must be public: an IP-literal host is checked directly; a name is
  resolved by :class:`GuardedResolver`, which refuses the name when *any* of its addresses
  is loopback, private, link-local, multicast, reserved or unspecified (not globally
  routable), unless the address lies in ``outbound.allowed_networks``. The connector
  connects to the addresses it vetted, so a second DNS answer cannot slip in between check
  and connect. Allow-listed origins go through a second session whose resolver serves only
  their exact host and port;
* the host must match one of the app's ``allowed_endpoints`` globs when it has any;
* redirects are never followed (UnifiedPush SERV_1.2.0 forbids it; a redirect would
  bypass the check).

Outcomes: a URL that is not an http(s) URL, or whose target is non-public and not allowed,
raises :class:`OutboundRefused`, a :class:`PushkeyRejected`: the pushkey goes into
``rejected`` and the homeserver drops the pusher, which could never be served. A host
outside the app's ``allowed_endpoints`` raises :class:`EndpointNotAllowed`, a
:class:`PermanentPushError`: not retried and — as Sygnal does — not rejected, so the pusher
survives until the operator decides (a config change may allow it).
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDictProxy
from yarl import URL

from timkit.core.errors import ConfigError
from timkit.core.http import aiohttp_session
from timkit.core.web import read_limited
from timkit.push.backends.base import (
    PermanentPushError,
    PushkeyRejected,
    TemporaryPushError,
    parse_retry_after,
)
from timkit.push.config import OutboundConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Host = IPAddress | str
"""A canonical host: an IP address, or a lower-case name without a trailing dot."""

MAX_RESPONSE_BODY = 16 * 1024
"""Bytes of a push service's response body read (and discarded) to keep the connection."""

_VISIBLE_ASCII = re.compile(r"[!-~]+")
_IPV6_LITERAL = re.compile(r"[0-9a-f:.]+")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_HEX_NUMBER = re.compile(r"0x[0-9a-f]*")


class OutboundRefused(PushkeyRejected):
    """The device's URL is no http(s) URL, or points at a non-public target not allowed.

    A :class:`PushkeyRejected`: the pusher can never be served, so its pushkey is rejected.
    """


class EndpointNotAllowed(PermanentPushError):
    """The device's URL is outside the app's ``allowed_endpoints`` (kept, not rejected)."""


class RefusedAddress(OSError):
    """Raised inside the connector when a name resolves to a refused address."""


@dataclass(frozen=True)
class Origin:
    """Scheme, canonical host and port of a URL (the port defaulted by scheme).

    IP hosts compare as addresses of their own family: ``127.0.0.1`` and
    ``::ffff:127.0.0.1`` are different origins.
    """

    scheme: str
    host: Host
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if isinstance(self.host, ipaddress.IPv6Address) else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class Target:
    """A vetted URL.

    Attributes:
        url: the parsed URL the request goes to.
        origin: its origin.
        allow_listed: the origin is on ``allowed_origins`` (sent to whatever its address).
    """

    url: URL
    origin: Origin
    allow_listed: bool


def ends_in_number(host: str) -> bool:
    """Whether a URL parser reads ``host`` as an IPv4 address (WHATWG URL "ends in a number")."""
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    last = labels[-1]
    return bool(last) and (last.isdigit() or _HEX_NUMBER.fullmatch(last) is not None)


def canonical_host(raw_host: str) -> Host:
    """``raw_host`` (as in the URL, without IPv6 brackets) in canonical form.

    Raises:
        ValueError: an ambiguous or malformed host, naming why.
    """
    host = raw_host.lower()
    if ":" in host:
        if not _IPV6_LITERAL.fullmatch(host):
            raise ValueError("host is not a plain IPv6 address (zones are not allowed)")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("host is not a valid IPv6 address") from None
    if ends_in_number(host):
        try:
            return ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(
                "host ends in a number but is not a plain dotted-quad IPv4 address"
            ) from None
    name = host.removesuffix(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(x) for x in name.split(".")):
        raise ValueError("host is not a valid host name")
    return name


def parse_url(text: str) -> tuple[URL, Origin]:
    """``text`` as an absolute http(s) URL and its origin.

    Raises:
        ValueError: not such a URL, naming why.
    """
    if not _VISIBLE_ASCII.fullmatch(text):
        raise ValueError("not a URL: empty, or it has spaces, control or non-ASCII characters")
    try:
        url = URL(text)
    except (TypeError, ValueError):
        raise ValueError("not a URL") from None
    if url.scheme not in ("http", "https") or not url.absolute or not url.raw_host:
        raise ValueError("not an absolute http(s) URL with a host")
    if url.raw_user is not None or url.raw_password is not None:
        raise ValueError("URL carries user information")
    port = url.port
    if port is None or not 0 < port < 65536:
        raise ValueError("URL has no valid port")
    return url, Origin(url.scheme, canonical_host(url.raw_host), port)


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


def parse_origins(
    origins: Sequence[str], *, path: str = "outbound.allowed_origins"
) -> frozenset[Origin]:
    """``origins`` (``scheme://host[:port]``, nothing else) as :class:`Origin`\\s.

    Raises:
        ConfigError: naming the first entry that is not an origin, has a path, query or
            fragment, or names an unspecified or multicast address.
    """
    parsed: set[Origin] = set()
    for index, text in enumerate(origins):
        where = f"{path}.{index}"
        try:
            url, origin = parse_url(text)
        except ValueError as exc:
            raise ConfigError(f"{text!r}: {exc}", path=where) from None
        if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
            raise ConfigError(f"{text!r}: an origin is scheme://host[:port] only", path=where)
        host = origin.host
        if not isinstance(host, str) and (host.is_unspecified or host.is_multicast):
            raise ConfigError(f"{text!r}: not an address to send to", path=where)
        parsed.add(origin)
    return frozenset(parsed)


class OutboundGuard:
    """Decides which addresses and URLs the gateway may send to.

    Args:
        allowed_networks: networks allowed although not globally routable.
        allowed_origins: origins allowed whatever their address (the local run's receiver).
    """

    def __init__(
        self,
        allowed_networks: Sequence[IPNetwork] = (),
        allowed_origins: Iterable[Origin] = (),
    ) -> None:
        self.allowed_networks = tuple(allowed_networks)
        self.allowed_origins = frozenset(allowed_origins)

    @classmethod
    def from_config(cls, config: OutboundConfig) -> OutboundGuard:
        """The guard of ``[outbound]``; ConfigError names a malformed network or origin."""
        return cls(parse_networks(config.allowed_networks), parse_origins(config.allowed_origins))

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

    def vet(self, url: str, allowed_endpoints: Sequence[str] = ()) -> Target:
        """``url`` parsed, when it may be sent to (names are vetted again at connect time).

        Raises:
            OutboundRefused: not an absolute http(s) URL (see the module docstring), or an
                IP literal that is not public and whose origin is not allowed.
            EndpointNotAllowed: a host outside ``allowed_endpoints``.
        """
        try:
            parsed, origin = parse_url(url)
        except ValueError as exc:
            raise OutboundRefused(f"endpoint refused: {exc}") from None
        allow_listed = origin in self.allowed_origins
        host = origin.host
        if not allow_listed and not isinstance(host, str) and not self.allows(host):
            raise OutboundRefused(
                f"endpoint address {host} is not public and {origin} is not in "
                "outbound.allowed_origins"
            )
        if allowed_endpoints and not any(
            fnmatch.fnmatchcase(str(host), pattern.lower()) for pattern in allowed_endpoints
        ):
            raise EndpointNotAllowed(f"endpoint host {host} is not in allowed_endpoints")
        return Target(parsed, origin, allow_listed)

    def check_url(self, url: str, allowed_endpoints: Sequence[str] = ()) -> URL:
        """:meth:`vet`'s URL."""
        return self.vet(url, allowed_endpoints).url


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
                raise RefusedAddress(
                    f"{host.rstrip('.')} resolves to {address}, which is not public, and the "
                    "origin is not in outbound.allowed_origins"
                )
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._resolver.close()


class AllowListedResolver(AbstractResolver):
    """Resolves only the names of allow-listed origins, on their port, to any address.

    Only URLs whose origin :meth:`OutboundGuard.vet` found on the allow-list are sent
    through the session using this resolver; it refuses every other name and port
    (defence in depth).

    Args:
        origins: the allow-listed origins.
        resolver: the resolver doing the lookup (aiohttp's default when None).
    """

    def __init__(self, origins: Iterable[Origin], resolver: AbstractResolver | None = None) -> None:
        self._names = frozenset((o.host, o.port) for o in origins if isinstance(o.host, str))
        self._resolver = resolver or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of ``host`` when ``(host, port)`` is an allow-listed origin's.

        Raises:
            RefusedAddress: any other name or port.
        """
        if (host.lower().removesuffix("."), port) not in self._names:
            raise RefusedAddress(f"{host}:{port} is not an allow-listed origin")
        return await self._resolver.resolve(host, port, family)

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
    """POSTs to device-supplied URLs through the guard; pooled sessions per app.

    Public targets go through one session (its resolver refuses non-public addresses),
    allow-listed origins through another (its resolver serves only their names).

    Args:
        guard: the address policy.
        ca_file: extra CA bundle trusted besides the system's (the local CA).
        limit: most connections open at once, per session.
    """

    def __init__(
        self, guard: OutboundGuard, *, ca_file: str | None = None, limit: int = 100
    ) -> None:
        self.guard = guard
        context = ssl.create_default_context()
        if ca_file is not None:
            context.load_verify_locations(cafile=ca_file)
        self.session = _session(GuardedResolver(guard), context, limit)
        self.allow_listed_session = (
            _session(AllowListedResolver(guard.allowed_origins), context, limit)
            if guard.allowed_origins
            else None
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
            EndpointNotAllowed: the host is outside ``allowed_endpoints``.
            TemporaryPushError: the connection failed or broke (worth retrying).
        """
        target = self.guard.vet(url, allowed_endpoints)
        session = self.session
        if target.allow_listed and self.allow_listed_session is not None:
            session = self.allow_listed_session
        host = target.origin.host
        try:
            async with session.post(
                target.url, data=body, headers=dict(headers), allow_redirects=False
            ) as response:
                try:
                    await read_limited(response, MAX_RESPONSE_BODY)
                except ValueError:
                    response.close()
                return PushResponse(response.status, response.headers)
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                raise OutboundRefused(str(exc.os_error)) from None
            raise TemporaryPushError(f"cannot resolve {host}") from None
        except aiohttp.ClientConnectorError as exc:
            raise TemporaryPushError(f"cannot connect to {host}: {exc.strerror}") from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            raise TemporaryPushError(f"{host}: {type(exc).__name__}") from None

    async def close(self) -> None:
        """Close the sessions and their connections."""
        await self.session.close()
        if self.allow_listed_session is not None:
            await self.allow_listed_session.close()


def _session(
    resolver: AbstractResolver, context: ssl.SSLContext, limit: int
) -> aiohttp.ClientSession:
    return aiohttp_session(
        tls=context, timeout=None, limit=limit, resolver=resolver, decompress=False
    )
