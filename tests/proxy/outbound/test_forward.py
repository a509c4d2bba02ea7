"""The outbound forward proxy: TLS interception and the ML-123665 check of every request.

Real TLS everywhere: a "federation" PKI issues the destination's certificate, a second PKI
is the interception CA; the destination is a real aiohttp HTTPS server recording what it
receives, and clients go through the proxy with ``CONNECT`` as Synapse does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from cryptography import x509

from timkit.core.errors import Codes, ConfigError, TimkitError
from timkit.core.names import NameTable
from timkit.core.process import free_port
from timkit.core.tls import LocalPKI, client_ssl_context, server_ssl_context
from timkit.proxy.config import ForwardProxyConfig, Unrouted
from timkit.proxy.domain_gate import StaticGate
from timkit.proxy.metrics import ProxyMetrics
from timkit.proxy.outbound.forward import (
    MAX_BODY,
    BadRequest,
    ForwardProxy,
    domains_to_check,
    parse_authority,
)
from timkit.proxy.passthrough import BUFFER_LIMIT

DOMAIN = "klinikum-nord.tim.test"
ORIGIN = "praxis-sonnenschein.tim.test"
OUTSIDER = "evil.example.com"
X_MATRIX = (
    f'X-Matrix origin="{ORIGIN}",destination="{DOMAIN}",key="ed25519:a_bcd",'
    'sig="dGhpcyBpcyBub3QgYSByZWFsIHNpZw"'
)


@dataclass
class Seen:
    """One request as the destination received it."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: tuple[str, int]


@dataclass
class Destination:
    """A real HTTPS server standing in for another Messenger-Service."""

    port: int
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def federation_pki(tmp_path: Path) -> LocalPKI:
    pki = LocalPKI(tmp_path / "federation", "federation CA")
    pki.ensure_ca()
    return pki


@pytest.fixture
def interception_pki(tmp_path: Path) -> LocalPKI:
    pki = LocalPKI(tmp_path / "interception", "interception CA")
    pki.ensure_ca()
    return pki


@pytest.fixture
async def destination(federation_pki: LocalPKI) -> AsyncIterator[Destination]:
    paths = federation_pki.ensure_server_cert(DOMAIN, [DOMAIN, "localhost"])
    dest = Destination(port=0)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        dest.seen.append(
            Seen(
                request.method,
                request.raw_path,
                [(k.decode(), v.decode()) for k, v in request.raw_headers],
                body,
                tuple(peer[:2]) if peer else ("", 0),
            )
        )
        if request.raw_path.startswith("/slow"):
            await dest.release.wait()
        if request.raw_path.startswith("/big"):
            return web.Response(body=b"0123456789abcdef" * (BUFFER_LIMIT // 8), status=200)
        return web.Response(
            status=201,
            body=b'{"pdus":  {}}',
            headers={"Content-Type": "application/json", "X-Destination": "yes"},
        )

    server = web.Server(handle, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", 0, ssl=server_ssl_context(paths))
    dest.port = listener.sockets[0].getsockname()[1]
    yield dest
    dest.release.set()
    listener.close()
    server.pre_shutdown()  # idle keep-alive connections from the proxy's pool end at once
    await server.shutdown(1.0)
    await listener.wait_closed()


ProxyFactory = Callable[..., Awaitable[ForwardProxy]]


@pytest.fixture
async def make_proxy(
    federation_pki: LocalPKI, interception_pki: LocalPKI
) -> AsyncIterator[ProxyFactory]:
    """Start proxies (``gate``/``metrics`` keyword arguments, the rest config); closed after."""
    started: list[ForwardProxy] = []

    async def make(
        gate: Any = None, metrics: ProxyMetrics | None = None, **overrides: Any
    ) -> ForwardProxy:
        config = ForwardProxyConfig.model_validate(
            {
                "port": 0,
                "interception_ca_cert": interception_pki.ca_cert_path,
                "interception_ca_key": interception_pki.ca_key_path,
                "ca_file": federation_pki.ca_cert_path,
                **overrides,
            }
        )
        proxy = ForwardProxy(config, gate or StaticGate([DOMAIN, ORIGIN]), metrics)
        await proxy.start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.close()


@pytest.fixture
def client_tls(interception_pki: LocalPKI) -> ssl.SSLContext:
    """What the proxy's Synapse trusts: the interception CA only."""
    return client_ssl_context(interception_pki.ca_cert_path)


def _client(proxy: ForwardProxy, tls: ssl.SSLContext) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=f"http://127.0.0.1:{proxy.port}", verify=tls, timeout=10)


@contextlib.asynccontextmanager
async def _tunnel(
    proxy: ForwardProxy, tls: ssl.SSLContext, host: str = DOMAIN, port: int = 8448
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw intercepted tunnel: CONNECT, then TLS verified against the interception CA."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        await writer.start_tls(tls, server_hostname=host)
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Send one raw request; read one response with a Content-Length body."""
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def _ask_listener(proxy: ForwardProxy, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(request)
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _count(metrics: ProxyMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"listener": "forward", **labels}) or 0.0


# --- forwarding -------------------------------------------------------------------------


async def test_allowed_request_is_forwarded_byte_identical_and_the_response_relayed(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    metrics = ProxyMetrics()
    proxy = await make_proxy(metrics=metrics, routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    path = "/_matrix/federation/v1/send/txn%2F1%3Aa%20b?x=%2F%40&y=1+2&y=%E2%82%AC"
    body = b'{"pdus":[],  "edus" : [ {"content": "\\u00e9\xc3\xa9"} ]}'
    request = (
        f"PUT {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nAuthorization: {X_MATRIX}\r\n"
        f"Content-Type: application/json\r\nX-Custom-Thing: Keep Me\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode() + body
    async with _tunnel(proxy, client_tls) as (reader, writer):
        status, headers, answer = await _exchange(reader, writer, request)
    assert (status, answer) == (201, b'{"pdus":  {}}')
    assert headers["x-destination"] == "yes"
    assert headers["content-type"] == "application/json"
    [seen] = destination.seen
    assert (seen.method, seen.raw_path, seen.body) == ("PUT", path, body)
    assert sorted(seen.headers) == sorted(
        [
            ("Host", DOMAIN),
            ("Authorization", X_MATRIX),
            ("Content-Type", "application/json"),
            ("X-Custom-Thing", "Keep Me"),
            ("Content-Length", str(len(body))),
        ]
    )  # hop-by-hop Connection dropped; nothing added (no User-Agent, Accept-Encoding)
    assert _count(metrics, "timkit_proxy_requests_total") == 1
    assert _count(metrics, "timkit_proxy_upstream_seconds_count") == 1


async def test_httpx_client_through_the_proxy_reaches_the_destination(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(
            f"https://{DOMAIN}:8448/_matrix/federation/v1/version",
            headers={"Authorization": X_MATRIX},
        )
    assert response.status_code == 201
    assert destination.seen[0].raw_path == "/_matrix/federation/v1/version"


async def test_large_responses_are_streamed_intact(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(f"https://{DOMAIN}/big", headers={"Authorization": X_MATRIX})
    assert response.status_code == 200
    assert response.content == b"0123456789abcdef" * (BUFFER_LIMIT // 8)


async def test_keep_alive_tunnel_and_pooled_upstream_connection_are_reused(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    request = f"GET /_matrix/key/v2/server HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode()
    async with _tunnel(proxy, client_tls) as (reader, writer):
        for _ in range(3):
            status, _, _ = await _exchange(reader, writer, request)
            assert status == 201
        assert proxy.tunnels == 1
    async with _tunnel(proxy, client_tls) as (reader, writer):  # a second tunnel
        status, _, _ = await _exchange(reader, writer, request)
        assert status == 201
    assert len(destination.seen) == 4
    assert len({seen.peer for seen in destination.seen}) == 1  # one onward TCP connection


async def test_intercepted_certificate_chains_to_the_interception_ca_and_names_the_host(
    make_proxy: ProxyFactory, interception_pki: LocalPKI, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy()
    async with _tunnel(proxy, client_tls, host=DOMAIN) as (_, writer):
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    ca = x509.load_pem_x509_certificate(interception_pki.ca_cert_path.read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DOMAIN]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days <= 8


async def test_sni_name_other_than_the_connect_host_is_minted_and_verified_onward(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    # Synapse after an SRV lookup: CONNECT to the SRV target, TLS (SNI) for the server name.
    target = "fed-1.hosting.test"
    proxy = await make_proxy(routes={target: f"127.0.0.1:{destination.port}"})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(f"CONNECT {target}:8448 HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await writer.start_tls(client_tls, server_hostname=DOMAIN)  # verifies a cert for DOMAIN
        request = f"GET /_matrix/key/v2/server HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode()
        status, _, _ = await _exchange(reader, writer, request)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    assert status == 201  # the destination's certificate names DOMAIN, not the SRV target
    assert len(destination.seen) == 1


async def test_tunnel_is_not_trusted_without_the_interception_ca(
    make_proxy: ProxyFactory, federation_pki: LocalPKI
) -> None:
    proxy = await make_proxy()
    federation_only = client_ssl_context(federation_pki.ca_cert_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        async with _tunnel(proxy, federation_only):
            pass


async def test_request_body_over_the_limit_is_refused_before_reading_it(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    request = (
        f"PUT /_matrix/federation/v1/send/1 HTTP/1.1\r\nHost: {DOMAIN}\r\n"
        f"Authorization: {X_MATRIX}\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
    ).encode()
    async with _tunnel(proxy, client_tls) as (reader, writer):
        status, _, body = await _exchange(reader, writer, request)
    assert status == 413
    assert b"M_TOO_LARGE" in body
    assert destination.seen == []


# --- ML-123665: the receiver's domain ------------------------------------------------------


async def test_ml_123665_destination_outside_the_federation_is_refused_and_never_sent(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    metrics = ProxyMetrics()
    route = f"127.0.0.1:{destination.port}"
    proxy = await make_proxy(metrics=metrics, routes={DOMAIN: route, OUTSIDER: route})
    foreign = X_MATRIX.replace(f'destination="{DOMAIN}"', f"destination={OUTSIDER}")
    async with _client(proxy, client_tls) as client:
        response = await client.put(
            f"https://{DOMAIN}:8448/_matrix/federation/v1/send/1",
            headers={"Authorization": foreign},
            content=b"{}",
        )
    assert response.status_code == 403
    error = response.json()
    assert error["errcode"] == "M_FORBIDDEN"
    assert OUTSIDER in error["error"]
    assert "ML-123665" in error["error"]
    assert destination.seen == []
    assert _count(metrics, "timkit_proxy_denials_total", rule="ML-123665") == 1


async def test_ml_123665_signed_request_via_a_delegated_host_is_judged_by_its_destination(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    # Server name DOMAIN delegates to "localhost" (well-known): the host is not in the list,
    # but the X-Matrix destination is, and that is what ML-123665 checks.
    proxy = await make_proxy(routes={"localhost": f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(
            "https://localhost:8448/_matrix/federation/v1/version",
            headers={"Authorization": X_MATRIX},
        )
    assert response.status_code == 201


async def test_ml_123665_well_known_to_a_host_outside_the_federation_is_refused(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={OUTSIDER: f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(f"https://{OUTSIDER}/.well-known/matrix/server")
    assert response.status_code == 403
    assert "ML-123665" in response.json()["error"]
    assert destination.seen == []


async def test_ml_123665_unsigned_key_request_to_a_member_is_allowed(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(f"https://{DOMAIN}/_matrix/key/v2/server")
    assert response.status_code == 201


async def test_ml_123665_media_download_of_a_foreign_server_name_is_refused(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(
            f"https://{DOMAIN}/_matrix/media/v3/download/{OUTSIDER}/abc?allow_remote=false"
        )
        allowed = await client.get(f"https://{DOMAIN}/_matrix/media/r0/download/{DOMAIN}/abc")
    assert response.status_code == 403
    assert OUTSIDER in response.json()["error"]
    assert allowed.status_code == 201
    assert [seen.raw_path for seen in destination.seen] == [
        f"/_matrix/media/r0/download/{DOMAIN}/abc"
    ]


class _NoListGate:
    """A gate that holds no valid federation list (fail closed)."""

    def check(self, domain: str, requirement: str) -> None:
        raise TimkitError(503, Codes.UNKNOWN, "no valid federation list", requirement=requirement)

    async def recheck(self, domain: str, requirement: str) -> None:
        self.check(domain, requirement)


async def test_ml_123665_without_a_valid_federation_list_everything_gets_503(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(gate=_NoListGate(), routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(
            f"https://{DOMAIN}/_matrix/federation/v1/version",
            headers={"Authorization": X_MATRIX},
        )
    assert response.status_code == 503
    assert "ML-123665" in response.json()["error"]
    assert destination.seen == []


async def test_malformed_x_matrix_header_is_a_400(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(
            f"https://{DOMAIN}/_matrix/federation/v1/version",
            headers={"Authorization": f'X-Matrix destination="{DOMAIN}",destination=x'},
        )
    assert response.status_code == 400
    assert destination.seen == []


# --- routing and upstream failures -------------------------------------------------------


async def test_routes_file_changes_apply_to_the_next_request(
    make_proxy: ProxyFactory,
    destination: Destination,
    client_tls: ssl.SSLContext,
    tmp_path: Path,
) -> None:
    names = NameTable(tmp_path / "names.json")
    proxy = await make_proxy(routes_file=names.path)
    url = f"https://{DOMAIN}/_matrix/key/v2/server"
    async with _client(proxy, client_tls) as client:
        assert (await client.get(url)).status_code == 502  # no file yet: unrouted
        names.set(DOMAIN, f"127.0.0.1:{destination.port}")  # a service joins
        assert (await client.get(url)).status_code == 201
        names.remove(DOMAIN)  # and leaves again
        response = await client.get(url)
    assert response.status_code == 502
    assert len(destination.seen) == 1


async def test_unrouted_name_is_refused_naming_the_host(
    make_proxy: ProxyFactory, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={})
    async with _client(proxy, client_tls) as client:
        response = await client.get(f"https://{DOMAIN}/_matrix/key/v2/server")
    assert response.status_code == 502
    assert response.json()["errcode"] == Codes.UPSTREAM
    assert f"no route to {DOMAIN}" in response.json()["error"]


async def test_unrouted_direct_mode_connects_to_the_requested_host(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(gate=StaticGate(["localhost"]), unrouted=Unrouted.DIRECT)
    async with _client(proxy, client_tls) as client:
        response = await client.get(f"https://localhost:{destination.port}/_matrix/key/v2/server")
    assert response.status_code == 201


async def test_unreachable_destination_gives_502(
    make_proxy: ProxyFactory, client_tls: ssl.SSLContext
) -> None:
    metrics = ProxyMetrics()
    proxy = await make_proxy(metrics=metrics, routes={DOMAIN: f"127.0.0.1:{free_port()}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(f"https://{DOMAIN}/_matrix/key/v2/server")
    assert response.status_code == 502
    assert response.json()["errcode"] == Codes.UPSTREAM
    assert _count(metrics, "timkit_proxy_upstream_errors_total") == 1


async def test_destination_with_an_untrusted_certificate_gives_502(
    make_proxy: ProxyFactory,
    destination: Destination,
    client_tls: ssl.SSLContext,
    interception_pki: LocalPKI,
) -> None:
    # Onward TLS is verified against ca_file: here a CA that did not issue the destination.
    proxy = await make_proxy(
        ca_file=interception_pki.ca_cert_path, routes={DOMAIN: f"127.0.0.1:{destination.port}"}
    )
    async with _client(proxy, client_tls) as client:
        response = await client.get(f"https://{DOMAIN}/_matrix/key/v2/server")
    assert response.status_code == 502
    assert destination.seen == []


async def test_slow_destination_gives_504(
    make_proxy: ProxyFactory, destination: Destination, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(timeout=0.3, routes={DOMAIN: f"127.0.0.1:{destination.port}"})
    async with _client(proxy, client_tls) as client:
        response = await client.get(f"https://{DOMAIN}/slow")
    assert response.status_code == 504
    assert response.json()["errcode"] == Codes.UPSTREAM


# --- the listener itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /health HTTP/1.1\r\n\r\n", b"200"),
        (b"GET http://example.org/ HTTP/1.1\r\n\r\n", b"405"),
        (b"CONNECT nohostport HTTP/1.1\r\n\r\n", b"400"),
        (b"CONNECT bad/host:443 HTTP/1.1\r\n\r\n", b"400"),
        (b"garbage\r\n\r\n", b"400"),
    ],
)
async def test_non_connect_requests_get_clear_answers(
    make_proxy: ProxyFactory, request_bytes: bytes, status: bytes
) -> None:
    proxy = await make_proxy()
    answer = await _ask_listener(proxy, request_bytes)
    assert answer.split()[1] == status


async def test_close_ends_open_tunnels(
    make_proxy: ProxyFactory, client_tls: ssl.SSLContext
) -> None:
    proxy = await make_proxy(routes={})
    async with _tunnel(proxy, client_tls) as (reader, writer):
        request = f"GET /_matrix/key/v2/server HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode()
        status, _, _ = await _exchange(reader, writer, request)  # the tunnel is in use
        assert (status, proxy.tunnels) == (502, 1)
        await proxy.close()
        assert await reader.read() == b""
        assert proxy.tunnels == 0


def test_proxy_refuses_to_start_without_an_interception_ca() -> None:
    with pytest.raises(ConfigError, match="interception CA"):
        ForwardProxy(ForwardProxyConfig(routes={DOMAIN: "127.0.0.1:1"}), StaticGate([DOMAIN]))


def test_routes_are_matched_case_insensitively_and_file_entries_win(
    interception_pki: LocalPKI, tmp_path: Path
) -> None:
    names = NameTable(tmp_path / "names.json")
    names.set(DOMAIN, "127.0.0.1:2000")
    ca = {
        "interception_ca_cert": interception_pki.ca_cert_path,
        "interception_ca_key": interception_pki.ca_key_path,
    }
    proxy = ForwardProxy(
        ForwardProxyConfig.model_validate(
            {
                **ca,
                "routes": {"Klinikum-Nord.tim.test": "127.0.0.1:1000", "o.tim.test": "[::1]:3"},
                "routes_file": names.path,
            }
        ),
        StaticGate([]),
    )
    assert proxy.route("klinikum-nord.tim.test", 443) == ("127.0.0.1", 2000)
    assert proxy.route("O.tim.test", 443) == ("::1", 3)
    assert proxy.route("other.tim.test", 443) is None
    direct = ForwardProxy(
        ForwardProxyConfig.model_validate({**ca, "unrouted": Unrouted.DIRECT}), StaticGate([])
    )
    assert direct.route("matrix.example.org", 8448) == ("matrix.example.org", 8448)


# --- parsing ---------------------------------------------------------------------------------


def test_parse_authority() -> None:
    assert parse_authority("Klinikum-Nord.tim.test:443") == ("klinikum-nord.tim.test", 443)
    assert parse_authority("[::1]:8448") == ("::1", 8448)
    assert parse_authority("127.0.0.1:8448") == ("127.0.0.1", 8448)
    for bad in ("host", "host:0", "host:99999", ":443", "a b:443", "[nope]:443", "-x.:1"):
        with pytest.raises(BadRequest):
            parse_authority(bad)


def test_domains_to_check_prefers_destination_and_adds_media_server_names() -> None:
    assert domains_to_check("h.test", "/_matrix/key/v2/server", []) == ["h.test"]
    assert domains_to_check("h.test", "/x", [X_MATRIX, "Bearer t"]) == [DOMAIN]
    assert domains_to_check("h.test", "/_matrix/media/v3/thumbnail/Other.test/id?w=1", []) == [
        "h.test",
        "other.test",
    ]
    # a destination given without X-Matrix elsewhere does not count
    assert domains_to_check("h.test", "/x", ['Basic destination="y"']) == ["h.test"]


def test_ml_123665_media_server_names_are_read_from_segments_like_the_destination_reads_them() -> (
    None
):
    encoded = "/_matrix/medi%61/v3/downloa%64/Evil.test/id"
    assert domains_to_check("h.test", encoded, []) == ["h.test", "evil.test"]
    for ambiguous in ("/_matrix/media/v3/download/../x", "/_matrix//media", "https://h/x"):
        with pytest.raises(BadRequest):
            domains_to_check("h.test", ambiguous, [])
