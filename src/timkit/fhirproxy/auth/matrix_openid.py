"""Checking Matrix OpenID tokens at the issuing homeserver (``/tim-authenticate``, ML-123485).

A TI-M client proves who it is with an OpenID token its homeserver issued
(``POST /_matrix/client/v3/user/{userId}/openid/request_token``). The FHIR-Proxy asks that
homeserver, found the way Matrix federation finds servers, who the token belongs to::

    GET https://<target>/_matrix/federation/v1/openid/userinfo?access_token=<token>
    200 {"sub": "@alice:example.org"}

Server discovery (Matrix server-server API, "Resolving server names"), in order:

1. a route (``matrix.routes_file``, re-read when it changes, then ``matrix.routes``: server
   name → ``host:port``; the local federation has no DNS): connect there, TLS checked
   against the server's host name;
2. an IP literal: that address, with the given port or 8448;
3. a host name with an explicit port: that host and port;
4. ``https://<host>/.well-known/matrix/server`` (https redirects followed): its ``m.server``
   delegation, resolved like 2 and 3, else ``<delegated host>:8448``;
5. otherwise ``<host>:8448``.

SRV records are not consulted. TLS is always verified (``matrix.ca_file`` or the system store).
Discovery results are cached for :data:`DISCOVERY_TTL` seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from timkit.core.names import NameTable, split_target
from timkit.core.web import json_object, read_limited
from timkit.fhirproxy.config import MatrixConfig

log = logging.getLogger(__name__)

DEFAULT_PORT = 8448
HTTPS_PORT = 443
DISCOVERY_TTL = 300.0
MAX_CACHED = 10_000
MAX_BODY = 64 * 1024
MAX_REDIRECTS = 3
USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"

_DNS_NAME = re.compile(r"[A-Za-z0-9.-]{1,255}")
"""The Matrix grammar's ``dns-name`` (``1*255 dns-char``, IPv4 literals included)."""
_LOCALPART = re.compile(r"[\x21-\x39\x3b-\x7e]+")


class InvalidToken(Exception):
    """The homeserver did not confirm the OpenID token, or answered nonsense about it."""


class Unavailable(Exception):
    """The homeserver could not be reached or failed (not a verdict on the token)."""


@dataclass(frozen=True)
class ServerName:
    """A Matrix server name: host (DNS name or IP literal, unbracketed) and optional port."""

    host: str
    port: int | None

    @property
    def is_ip(self) -> bool:
        """Whether the host is an IP literal."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_server_name(text: str) -> ServerName:
    """Parse ``host[:port]`` (``[v6]`` in brackets) per the Matrix grammar; lower-cases DNS names.

    Raises:
        ValueError: when ``text`` is not a server name.
    """
    if not text or len(text) > 255:
        raise ValueError("server name must have 1 to 255 characters")
    port: int | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"unterminated IPv6 literal in {text!r}")
        ipaddress.IPv6Address(host)
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"junk after IPv6 literal in {text!r}")
            port = _port(rest[1:])
        return ServerName(host.lower(), port)
    host, sep, port_text = text.partition(":")
    if sep:
        port = _port(port_text)
    if not _DNS_NAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a DNS name or IPv4 address")
    return ServerName(host.lower(), port)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 0 < int(text) < 65536:
        raise ValueError(f"{text!r} is not a port")
    return int(text)


def split_mxid(mxid: str) -> tuple[str, str]:
    """``@localpart:server`` → (localpart, server name); ValueError when malformed."""
    if not mxid.startswith("@") or ":" not in mxid or len(mxid) > 255:
        raise ValueError(f"{mxid!r} is not a Matrix user id")
    localpart, _, server = mxid[1:].partition(":")
    if not _LOCALPART.fullmatch(localpart):
        raise ValueError(f"{mxid!r} has an invalid localpart")
    parse_server_name(server)
    return localpart, server


def url_notation(mxid: str) -> str:
    """A Matrix user id in the URI notation TI-M uses: ``matrix:u/<localpart>:<server>``."""
    localpart, server = split_mxid(mxid)
    return f"matrix:u/{localpart}:{server}"


@dataclass(frozen=True)
class Target:
    """Where a server's federation API is reached.

    Attributes:
        host: address to connect to.
        port: port to connect to.
        tls_name: name the TLS certificate must carry (and SNI).
        host_header: the HTTP ``Host`` header.
    """

    host: str
    port: int
    tls_name: str
    host_header: str

    def url(self, path: str) -> URL:
        """``https://host:port<path>``."""
        return URL.build(scheme="https", host=self.host, port=self.port, path=path)


class MatrixResolver:
    """Server discovery plus the userinfo call, with a short-lived discovery cache.

    Args:
        config: routes, CA bundle and time-out.
        http: the outbound session (requests pass their own TLS context).
        clock: monotonic seconds, for the cache.
    """

    https_port = HTTPS_PORT
    """Port of ``/.well-known/matrix/server`` (a test seam; 443 in Matrix)."""

    default_port = DEFAULT_PORT
    """Federation port when nothing names one (8448 in Matrix)."""

    def __init__(
        self,
        config: MatrixConfig,
        http: aiohttp.ClientSession,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._names = NameTable(config.routes_file, config.routes)
        self._http = http
        self._clock = clock
        self._ssl = (
            ssl.create_default_context(cafile=str(config.ca_file))
            if config.ca_file is not None
            else ssl.create_default_context()
        )
        self._cache: OrderedDict[str, tuple[float, Target]] = OrderedDict()

    async def userinfo(self, server: ServerName, token: str) -> str:
        """The MXID the homeserver of ``server`` says ``token`` belongs to.

        The whole exchange (discovery plus userinfo) is bounded by ``matrix.timeout``.

        Raises:
            InvalidToken: the homeserver rejected the token or answered without a ``sub``.
            Unavailable: the homeserver could not be reached or failed.
        """
        try:
            async with asyncio.timeout(self._config.timeout):
                target = await self.resolve(server)
                status, body = await self._get(
                    target, USERINFO_PATH, params={"access_token": token}
                )
        except TimeoutError as e:
            raise Unavailable(f"{server}: no answer within {self._config.timeout} s") from e
        except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
            raise Unavailable(f"{server}: {type(e).__name__}: {e}") from e
        if status in (401, 403, 404):
            raise InvalidToken(f"the homeserver {server} rejected the OpenID token ({status})")
        if status != 200:
            raise Unavailable(f"{server} answered the userinfo request with {status}")
        document = json_object(body)
        sub = document.get("sub") if document is not None else None
        if not isinstance(sub, str):
            raise InvalidToken(f"the homeserver {server} returned no user id for the token")
        return sub

    async def resolve(self, server: ServerName) -> Target:
        """Where ``server``'s federation API is (cached; see the module docstring)."""
        key = str(server)
        route = self._names.resolve(key)
        if route is not None:
            host, port = split_target(route)
            return Target(host, port, server.host, key)
        if server.is_ip or server.port is not None:
            return _direct(server, self.default_port)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        target = await self._discover(server)
        self._cache[key] = (self._clock() + DISCOVERY_TTL, target)
        self._cache.move_to_end(key)
        if len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return target

    async def _discover(self, server: ServerName) -> Target:
        delegated = await self._well_known(server)
        if delegated is None:
            return Target(server.host, self.default_port, server.host, server.host)
        if delegated.is_ip or delegated.port is not None:
            return _direct(delegated, self.default_port)
        return Target(delegated.host, self.default_port, delegated.host, delegated.host)

    async def _well_known(self, server: ServerName) -> ServerName | None:
        url = URL.build(
            scheme="https",
            host=server.host,
            port=self.https_port,
            path="/.well-known/matrix/server",
        )
        try:
            for _ in range(MAX_REDIRECTS + 1):
                async with self._http.get(
                    url,
                    ssl=self._ssl,
                    allow_redirects=False,
                    headers={"Accept-Encoding": "identity"},
                ) as response:
                    location = response.headers.get("Location")
                    if response.status in (301, 302, 307, 308) and location:
                        url = url.join(URL(location))
                        if url.scheme != "https":
                            return None
                        continue
                    if response.status != 200:
                        return None
                    body = await read_limited(response, MAX_BODY)
                    break
            else:
                return None
        except (aiohttp.ClientError, ssl.SSLError, OSError, ValueError) as e:
            log.debug("no well-known for %s: %s", server, e)
            return None
        document = json_object(body)
        delegation = document.get("m.server") if document is not None else None
        if not isinstance(delegation, str):
            return None
        try:
            return parse_server_name(delegation)
        except ValueError:
            return None

    async def _get(self, target: Target, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        async with self._http.get(
            target.url(path),
            params=params,
            ssl=self._ssl,
            server_hostname=target.tls_name,
            allow_redirects=False,
            headers={"Host": target.host_header, "Accept-Encoding": "identity"},
        ) as response:
            return response.status, await read_limited(response, MAX_BODY)


def _direct(server: ServerName, default_port: int) -> Target:
    port = server.port or default_port
    return Target(server.host, port, server.host, str(server))
