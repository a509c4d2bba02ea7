"""Real HTTP servers standing in for the proxy's neighbours in component tests.

* :class:`FakeRd`: the Registrierungs-Dienst's ``GET /federation`` (proxies' bearer token,
  ``?version=``, 200 JWS / 304 / 503) and ``POST /vzd/invite`` (stage 3), over TLS.
* :class:`FakeSynapse`: the homeserver behind the proxy, plain HTTP, recording every request
  byte for byte and answering the few client and federation endpoints the proxy cares about.
* :func:`sign_list`: a federation list signed like the VZD-FHIR-Directory signs it.
* :func:`proxy_keys` / :func:`proxy_config`: a Messenger-Proxy's certificates, interception
  CA and RD token under a test directory, and its config in front of these stand-ins.
* :func:`running_stack`: such a proxy started by its real composition root between the two
  stand-ins, with a TLS client in front (:class:`Stack`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.wait import async_wait_until
from timkit.core import jwt
from timkit.core.config import parse_config
from timkit.core.tls import FEDERATION_LIST_SIGNER, CertPaths, LocalPKI, server_ssl_context
from timkit.core.web import running_app
from timkit.proxy.config import ProxyConfig
from timkit.proxy.service import RunningProxy, running_proxy

TOKEN = "proxies-token-0123456789"
PASSWORD = "richtiges-Passwort"
OUTDATED = "TIM_FEDERATION_LIST_OUTDATED"
MISSING = "TIM_FEDERATION_LIST_MISSING"


def sign_list(pki: LocalPKI, version: int, domains: list[str], name: str = "flist") -> bytes:
    """A federation list as the VZD-FHIR-Directory signs it (BP256R1, x5c)."""
    signer = pki.ensure_signing_cert(
        name, "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1(), role=FEDERATION_LIST_SIGNER
    )
    payload = {"version": version, "domainList": [{"domain": d} for d in domains]}
    return jwt.sign(
        orjson.dumps(payload),
        jwt.key_from_pem(signer.key.read_bytes()),
        x5c=jwt.x5c_of(x509.load_pem_x509_certificates(signer.cert.read_bytes())),
    ).encode()


@dataclass(frozen=True)
class ProxyKeys:
    """What a Messenger-Proxy under test needs on disk (:func:`proxy_keys`).

    Attributes:
        root: the test directory holding everything below.
        pki: the local CA (RD and proxy certificates, list signer, trust anchor).
        interception: the proxy's interception CA.
        rd_tls: the RD stand-in's server certificate.
        proxy_tls: the proxy's server certificate.
        token_file: the proxies' bearer token for the RD (:data:`TOKEN`).
    """

    root: Path
    pki: LocalPKI
    interception: LocalPKI
    rd_tls: CertPaths
    proxy_tls: CertPaths
    token_file: Path


def proxy_keys(root: Path, server_name: str) -> ProxyKeys:
    """Create a proxy's certificates, interception CA and RD token under ``root``."""
    pki = LocalPKI(root / "pki")
    interception = LocalPKI(root / "interception", ca_name="interception")
    interception.ensure_ca()
    token_file = root / "token"
    token_file.write_text(TOKEN)
    return ProxyKeys(
        root=root,
        pki=pki,
        interception=interception,
        rd_tls=pki.ensure_server_cert("rd", ["127.0.0.1"]),
        proxy_tls=pki.ensure_server_cert(server_name, [server_name, "127.0.0.1"]),
        token_file=token_file,
    )


def proxy_config(
    keys: ProxyKeys,
    server_name: str,
    rd_url: str,
    upstream_url: str,
    *,
    inbound: dict[str, Any] | None = None,
    contacts: dict[str, Any] | None = None,
) -> ProxyConfig:
    """The config of a proxy for ``server_name`` in front of ``upstream_url`` (a Synapse
    stand-in), pulling its list from and asking stage 3 at the RD stand-in ``rd_url``.

    Args:
        inbound: extra ``[inbound]`` settings (limits, push gateways, read times).
        contacts: extra ``[contacts]`` settings (the database is SQLite under ``root``).
    """
    pki = keys.pki
    return parse_config(
        ProxyConfig,
        {
            "server_name": server_name,
            "inbound": {
                "port": 0,
                "tls_cert": keys.proxy_tls.cert,
                "tls_key": keys.proxy_tls.key,
                **(inbound or {}),
            },
            "upstream": {"url": upstream_url},
            "forward": {
                "port": 0,
                "interception_ca_cert": keys.interception.ca_cert_path,
                "interception_ca_key": keys.interception.ca_key_path,
                "ca_file": pki.ca_cert_path,
            },
            "federation_list": {
                "url": rd_url + "/federation",
                "token_file": keys.token_file,
                "ca_file": pki.ca_cert_path,
                "trust_anchors": [pki.ca_cert_path],
                "state_file": keys.root / "proxy" / "list.json",
            },
            "invite_check": {
                "url": rd_url + "/vzd/invite",
                "token_file": keys.token_file,
                "ca_file": pki.ca_cert_path,
            },
            "contacts": {"database": f"sqlite:///{keys.root / 'proxy.db'}", **(contacts or {})},
        },
    )


@dataclass
class FakeRd:
    """The RD as its proxies see it (see the module docstring)."""

    jws: bytes | None = None
    version: int = 0
    outdated: bool = False
    asked: list[str | None] = field(default_factory=list)
    allowed_invites: set[tuple[str, str]] = field(default_factory=set)
    invite_checks: list[tuple[str, str]] = field(default_factory=list)
    invite_down: bool = False

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def federation(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "no"}, status=401)
        held = request.query.get("version")
        self.asked.append(held)
        if self.outdated:
            return web.json_response({"errcode": OUTDATED, "error": "veraltet"}, status=503)
        if self.jws is None:
            return web.json_response({"errcode": MISSING, "error": "none"}, status=503)
        if held == str(self.version):
            return web.Response(status=304)
        return web.Response(body=self.jws, content_type="application/jose")

    async def invite(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "no"}, status=401)
        if self.invite_down:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "VZD down"}, status=503)
        body = await request.json()
        pair = (body["invitingUser"], body["invitedUser"])
        self.invite_checks.append(pair)
        if pair in self.allowed_invites:
            return web.json_response({"allowed": True, "rule": "org directory"})
        return web.json_response(
            {"errcode": "M_FORBIDDEN", "error": "not in the organisation directory"}, status=403
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/federation", self.federation)
        app.router.add_post("/vzd/invite", self.invite)
        return app


@dataclass
class Seen:
    """One request as the homeserver received it."""

    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeSynapse:
    """The homeserver behind the proxy (see the module docstring).

    ``users`` maps access token → user id (for ``whoami``); ``big`` is the body of
    ``GET /big`` (streamed without a length).
    """

    server_name: str
    users: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    rooms: int = 0
    big: bytes = b""
    versions: bytes = orjson.dumps(
        {
            "versions": ["r0.5.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.11", "v1.12"],
            "unstable_features": {"org.matrix.msc3916.stable": True},
        }
    )

    async def _record(self, request: web.Request) -> Seen:
        seen = Seen(request.method, request.raw_path, dict(request.headers), await request.read())
        self.seen.append(seen)
        return seen

    async def create_room(self, request: web.Request) -> web.Response:
        await self._record(request)
        self.rooms += 1
        return web.json_response({"room_id": f"!room{self.rooms}:{self.server_name}"})

    async def whoami(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user = self.users.get(token)
        if user is None:
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "?"}, status=401)
        return web.json_response({"user_id": user})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(self.big), 65536):
            await response.write(self.big[i : i + 65536])
        await response.write_eof()
        return response

    async def client_versions(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(body=self.versions, content_type="application/json")

    async def other(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        return web.json_response({"method": seen.method, "path": seen.raw_path})

    async def login(self, request: web.Request) -> web.Response:
        """``POST …/login``: 403 (Synapse's wrong-password answer) for a password other than
        :data:`PASSWORD`, else 200 with a token."""
        seen = await self._record(request)
        body = orjson.loads(seen.body or b"{}")
        if body.get("password", PASSWORD) != PASSWORD:
            return web.json_response(
                {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}, status=403
            )
        user = f"@{body.get('identifier', {}).get('user', 'u')}:{self.server_name}"
        return web.json_response({"user_id": user, "access_token": "t0k", "device_id": "D"})

    async def register(self, request: web.Request) -> web.Response:
        """``POST …/register``: the User-Interactive Authentication 401 naming the flows
        without ``auth``, 200 with it."""
        seen = await self._record(request)
        body = orjson.loads(seen.body or b"{}")
        if "auth" not in body:
            flows = [{"stages": ["m.login.dummy"]}]
            return web.json_response({"session": "s1", "flows": flows, "params": {}}, status=401)
        user = f"@{body['username']}:{self.server_name}"
        return web.json_response({"user_id": user, "access_token": "t1", "device_id": "E"})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_post("/_matrix/client/v3/createRoom", self.create_room)
        app.router.add_get("/_matrix/client/v3/account/whoami", self.whoami)
        app.router.add_get("/big", self.stream)
        app.router.add_get("/_matrix/client/versions", self.client_versions)
        app.router.add_post("/_matrix/client/{version:.+}/login", self.login)
        app.router.add_post("/_matrix/client/{version:.+}/register", self.register)
        app.router.add_route("*", "/{tail:.*}", self.other)
        return app


@dataclass
class Stack:
    """A running Messenger-Proxy between real servers (:func:`running_stack`).

    Attributes:
        proxy: the proxy, started by its real composition root.
        synapse: the homeserver stand-in behind it.
        rd: the RD stand-in it pulls its list from and asks at stage 3.
        http: a TLS client in front of its inbound listener.
        tls: the client's TLS context (trusting the local CA).
    """

    proxy: RunningProxy
    synapse: FakeSynapse
    rd: FakeRd
    http: httpx.AsyncClient
    tls: ssl.SSLContext

    def last(self) -> Any:
        """The last request the homeserver stand-in received."""
        return self.synapse.seen[-1]

    def records(self) -> list[dict[str, Any]]:
        """The proxy's raw-data records so far (its default JSON-lines sink)."""
        path = self.proxy.config.federation_list.state_file.parent / "rawdata.jsonl"
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_text().splitlines()]

    async def raw(self, head: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
        """Send ``head`` (request line and header lines, CRLF-joined by the caller's
        ``\n``) byte for byte over TLS, as no HTTP client library would write it."""
        host, port = "127.0.0.1", self.proxy.inbound_port
        reader, writer = await asyncio.open_connection(host, port, ssl=self.tls)
        lines = head.strip("\n").split("\n")
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        document = orjson.loads(rest.partition(b"\r\n\r\n")[2] or b"{}")
        return int(status_line.split()[1]), document


@asynccontextmanager
async def running_stack(
    root: Path,
    synapse: FakeSynapse,
    listed: list[str],
    *,
    inbound: dict[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    """A proxy for ``synapse.server_name`` in front of ``synapse``, its keys under ``root``,
    with the federation list ``listed`` (held before the context is entered).

    Args:
        inbound: extra ``[inbound]`` settings.
    """
    keys = proxy_keys(root, synapse.server_name)
    rd = FakeRd()
    rd.jws, rd.version = sign_list(keys.pki, 1, listed), 1
    async with (
        running_app(rd.app(), "127.0.0.1", 0, server_ssl_context(keys.rd_tls)) as rd_runner,
        running_app(synapse.app(), "127.0.0.1", 0) as synapse_runner,
    ):
        config = proxy_config(
            keys,
            synapse.server_name,
            f"https://127.0.0.1:{rd_runner.addresses[0][1]}",
            f"http://127.0.0.1:{synapse_runner.addresses[0][1]}",
            inbound=inbound,
        )
        async with running_proxy(config) as proxy:
            await async_wait_until(lambda: proxy.gate.held is not None, "the first list")
            tls = ssl.create_default_context(cafile=str(keys.pki.ca_cert_path))
            async with httpx.AsyncClient(
                base_url=f"https://127.0.0.1:{proxy.inbound_port}", verify=tls
            ) as http:
                yield Stack(proxy, synapse, rd, http, tls)
