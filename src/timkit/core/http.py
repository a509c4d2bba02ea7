"""The one way timkit builds HTTP clients: explicit trust, explicit time-outs, no env proxies.

One factory per HTTP library, so every client of a kind is configured alike:

* :func:`async_client` / :func:`sync_client`: ``httpx`` clients (asyncio and blocking) for
  request/response calls: tools, the runtime, the RD's provider calls, the Push-Gateway's
  FCM/APNs backends (``http2``).
* :func:`aiohttp_session`: an ``aiohttp.ClientSession`` for the components that pool many
  connections to a peer or stream bodies on: the Messenger-Proxy (relay to Synapse,
  forward proxy, federation list, invite check, OpenID userinfo), the FHIR-Proxy, the
  Push-Gateway's guarded WebPush client.

Common to all: TLS trusts exactly the local CA when ``ca_cert`` is given (hostname checks
on), the system store otherwise, or the caller's own ``ssl.SSLContext`` (``tls``);
environment variables (``HTTPS_PROXY``, ``NO_PROXY``, ``.netrc``) are ignored
(``trust_env=False``), so a proxy set for Synapse never diverts a timkit component;
redirects are not followed by the ``httpx`` clients (their default).

The documented exception is :mod:`timkit.proxy.upstream`: the Messenger-Proxy's relay to its
Synapse speaks HTTP/1.1 on asyncio streams itself, because a ``ClientSession`` builds a full
request object per request and writes head and body separately (see its docstring).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from pathlib import Path

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver

from timkit.core.tls import client_ssl_context

DEFAULT_TIMEOUT = 10.0
"""Seconds a client waits (connect, read, write, pool; an aiohttp session: the whole
request) unless its caller says otherwise."""
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
"""httpx's own default pool limits (an ``httpx`` client without ``max_connections``)."""


def _verify(ca_cert: Path | None) -> ssl.SSLContext:
    """A context trusting exactly ``ca_cert``, or the system store when it is None.

    Raises:
        OSError: ``ca_cert`` cannot be read or holds no certificate (``ssl.SSLError``).
    """
    return client_ssl_context(ca_cert) if ca_cert is not None else ssl.create_default_context()


def async_client(
    ca_cert: Path | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    http2: bool = False,
    max_connections: int | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that trusts ``ca_cert`` only (system trust when ``None``).

    Args:
        ca_cert: PEM CA bundle, usually the local CA of the data directory.
        timeout: seconds for connect, read, write and pool acquisition.
        http2: negotiate HTTP/2 (ALPN) where the server offers it.
        max_connections: most connections open at once (then without a separate limit on
            idle ones); None = httpx's default limits.

    Raises:
        OSError: ``ca_cert`` cannot be read or holds no certificate.
    """
    limits = (
        httpx.Limits(max_connections=max_connections)
        if max_connections is not None
        else DEFAULT_LIMITS
    )
    return httpx.AsyncClient(
        verify=_verify(ca_cert), timeout=timeout, http2=http2, limits=limits, trust_env=False
    )


def sync_client(ca_cert: Path | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> httpx.Client:
    """:func:`async_client`'s blocking twin (for CLI commands), HTTP/1.1 only.

    Raises:
        OSError: ``ca_cert`` cannot be read or holds no certificate.
    """
    return httpx.Client(verify=_verify(ca_cert), timeout=timeout, trust_env=False)


def aiohttp_session(
    ca_cert: Path | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    connect_timeout: float | None = None,
    limit: int = 100,
    limit_per_host: int = 0,
    keepalive: float = 15.0,
    resolver: AbstractResolver | None = None,
    dns_cache: bool = True,
    dns_ttl: int | None = 10,
    decompress: bool = True,
    skip_auto_headers: Iterable[str] | None = None,
    cookies: bool = True,
) -> aiohttp.ClientSession:
    """A pooled ``aiohttp.ClientSession`` (call it inside the event loop that uses it).

    The defaults are aiohttp's own, except ``timeout`` and ``trust_env`` (always False).

    Args:
        ca_cert: PEM CA bundle trusted exclusively (hostname checks on); None = the system
            store (or ``tls``).
        tls: the TLS context to use instead (e.g. system store plus the local CA); excludes
            ``ca_cert``.
        timeout: seconds a whole request may take (connect to end of body); None = no limit.
        connect_timeout: seconds to open a connection (and acquire it from the pool's
            socket); None = only ``timeout`` bounds it.
        limit: most connections open at once.
        limit_per_host: most connections open to one host; 0 = no own limit.
        keepalive: seconds an idle connection stays in the pool.
        resolver: the name resolver (an address policy, a route table); None = aiohttp's.
        dns_cache: cache resolved names; False when the resolver decides on every connection.
        dns_ttl: seconds a resolved name is cached; None = for the session's lifetime.
        decompress: decode ``Content-Encoding`` of responses (False for a relay).
        skip_auto_headers: headers aiohttp must not add on its own (``User-Agent``, …).
        cookies: keep cookies between requests; False = never send or store any.

    Raises:
        ValueError: both ``ca_cert`` and ``tls`` are given.
        OSError: ``ca_cert`` cannot be read or holds no certificate.
    """
    if ca_cert is not None and tls is not None:
        raise ValueError("give ca_cert or tls, not both")
    context: ssl.SSLContext | bool = True  # aiohttp's verified default context
    if tls is not None:
        context = tls
    elif ca_cert is not None:
        context = client_ssl_context(ca_cert)
    connector = aiohttp.TCPConnector(
        ssl=context,
        limit=limit,
        limit_per_host=limit_per_host,
        keepalive_timeout=keepalive,
        resolver=resolver,
        use_dns_cache=dns_cache,
        ttl_dns_cache=dns_ttl,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout),
        auto_decompress=decompress,
        skip_auto_headers=skip_auto_headers,
        cookie_jar=None if cookies else aiohttp.DummyCookieJar(),
        trust_env=False,
    )
