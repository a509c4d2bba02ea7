"""``/tim-authenticate`` (ML-123485) and Matrix server discovery, against a TLS homeserver
stand-in that speaks ``/_matrix/federation/v1/openid/userinfo`` and
``/.well-known/matrix/server``, and ``matrix.routes_file`` (homeservers that join a running
federation are found). (The end-to-end test with a real Synapse lives elsewhere.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fhirproxy.conftest import Stack, start_stack
from timkit.core.names import NameTable
from timkit.core.process import free_port
from timkit.core.tls import LocalPKI, server_ssl_context
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.auth.matrix_openid import (
    InvalidToken,
    MatrixResolver,
    ServerName,
    Target,
    Unavailable,
    parse_server_name,
    url_notation,
)
from timkit.fhirproxy.config import MatrixConfig

SERVER = "hs.timkit.test"


@dataclass
class Homeserver:
    """A TLS homeserver stand-in: userinfo for known OpenID tokens, optional well-known."""

    pki: LocalPKI
    names: list[str]
    tokens: dict[str, str] = field(default_factory=dict)
    well_known: dict[str, Any] | None = None
    port: int = field(default_factory=free_port)
    userinfo_calls: int = 0
    well_known_calls: int = 0
    hosts: list[str] = field(default_factory=list)

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/_matrix/federation/v1/openid/userinfo", self._userinfo)
        app.router.add_get("/.well-known/matrix/server", self._well_known)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        paths = self.pki.ensure_server_cert(self.names[0], self.names)
        await web.TCPSite(
            runner, "127.0.0.1", self.port, ssl_context=server_ssl_context(paths)
        ).start()
        return runner

    async def _userinfo(self, request: web.Request) -> web.Response:
        self.userinfo_calls += 1
        self.hosts.append(request.headers.get("Host", ""))
        mxid = self.tokens.get(request.query.get("access_token", ""))
        if mxid is None:
            return web.json_response(
                {"errcode": "M_UNKNOWN_TOKEN", "error": "Access Token unknown or expired"},
                status=401,
            )
        return web.json_response({"sub": mxid})

    async def _well_known(self, _request: web.Request) -> web.Response:
        self.well_known_calls += 1
        if self.well_known is None:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        return web.json_response(self.well_known)


@dataclass
class MatrixSetup:
    stack: Stack
    homeserver: Homeserver

    async def authenticate(self, mx_id: str, token: str | None) -> Any:
        headers = {"X-Matrix-OpenID-Token": token} if token is not None else {}
        return await self.stack.request(
            "GET", "/tim-authenticate", params={"mxId": mx_id}, headers=headers
        )


@pytest.fixture
def fed_pki(tmp_path: Path) -> LocalPKI:
    """The federation's local PKI (homeserver certificates)."""
    pki = LocalPKI(tmp_path / "federation-pki")
    pki.ensure_ca()
    return pki


@pytest.fixture
async def homeserver(fed_pki: LocalPKI) -> AsyncIterator[Homeserver]:
    """A homeserver for ``hs.timkit.test`` (certificate also valid for loopback names)."""
    server = Homeserver(fed_pki, [SERVER, "localhost", "127.0.0.1"])
    server.tokens["tok-alice"] = f"@alice:{SERVER}"
    runner = await server.start()
    yield server
    await runner.cleanup()


@pytest.fixture
async def matrix(
    tmp_path: Path, fed_pki: LocalPKI, homeserver: Homeserver
) -> AsyncIterator[MatrixSetup]:
    """The stack with a route to the homeserver, its CA trusted, its domain listed."""
    dead = free_port()
    settings = {
        "matrix": {
            "routes": {
                SERVER: f"127.0.0.1:{homeserver.port}",
                "dead.timkit.test": f"127.0.0.1:{dead}",
            },
            "ca_file": fed_pki.ca_cert_path,
            "timeout": 5,
        },
        "rate_limit": {"per_minute": 6000, "burst": 1000},
    }
    async for stack in start_stack(tmp_path, **settings):
        stack.add_domain(SERVER, "provider-a", "1-SMC-B-Testkarte-883110000092414")
        yield MatrixSetup(stack, homeserver)


async def test_ml_123485_openid_token_exchanged_for_search_token(matrix: MatrixSetup) -> None:
    response = await matrix.authenticate(SERVER, "tok-alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert response.headers["Cache-Control"] == "no-store"
    claims = matrix.stack.ctx.tokens.check(body["access_token"], Kind.SEARCH)
    assert claims["sub"] == f"matrix:u/alice:{SERVER}"
    assert claims["iss"] == matrix.stack.url + "/tim-authenticate"
    assert matrix.stack.url + "/search" in claims["aud"]
    assert matrix.homeserver.hosts == [SERVER]


@pytest.mark.parametrize(
    "mx_id", [f"@alice:{SERVER}", f"matrix:u/alice:{SERVER}", "HS.timkit.test"]
)
async def test_ml_123485_mxid_forms_name_the_server(matrix: MatrixSetup, mx_id: str) -> None:
    response = await matrix.authenticate(mx_id, "tok-alice")
    assert response.status_code == 200, response.text


async def test_ml_123485_server_not_in_federation_list_is_403(matrix: MatrixSetup) -> None:
    response = await matrix.authenticate("other.timkit.test", "tok-alice")
    assert response.status_code == 403
    assert "ML-123485" in response.json()["error_description"]
    assert matrix.homeserver.userinfo_calls == 0


async def test_ml_123485_invalid_openid_token_is_401(matrix: MatrixSetup) -> None:
    response = await matrix.authenticate(SERVER, "tok-forged")
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_token"
    assert "ML-123485" in body["error_description"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", [None, "", "bad\ttoken", "x" * 2000])
async def test_ml_123485_missing_or_malformed_openid_token_is_401(
    matrix: MatrixSetup, token: str | None
) -> None:
    response = await matrix.authenticate(SERVER, token)
    assert response.status_code == 401
    assert matrix.homeserver.userinfo_calls == 0


@pytest.mark.parametrize("mxid", ["@mallory:evil.example", "@alice:hs.timkit.test.evil", "alice"])
async def test_ml_123485_user_of_another_server_is_401(matrix: MatrixSetup, mxid: str) -> None:
    matrix.homeserver.tokens["tok-foreign"] = mxid
    response = await matrix.authenticate(SERVER, "tok-foreign")
    assert response.status_code == 401
    assert "ML-123485" in response.json()["error_description"]


@pytest.mark.parametrize("mx_id", ["", "hs.timkit.test/evil", "hs.timkit.test:99999", "[::1"])
async def test_ml_123485_malformed_mxid_is_400(matrix: MatrixSetup, mx_id: str) -> None:
    response = await matrix.authenticate(mx_id, "tok-alice")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_ml_123485_unreachable_homeserver_is_503(matrix: MatrixSetup) -> None:
    matrix.stack.add_domain("dead.timkit.test", "provider-a", "1-SMC-B-Testkarte-1")
    response = await matrix.authenticate("dead.timkit.test", "tok-alice")
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


async def test_ml_123485_untrusted_homeserver_certificate_fails_closed(
    tmp_path: Path, homeserver: Homeserver
) -> None:
    settings = {"matrix": {"routes": {SERVER: f"127.0.0.1:{homeserver.port}"}, "timeout": 5}}
    async for stack in start_stack(tmp_path, **settings):
        stack.add_domain(SERVER, "provider-a", "1-SMC-B-Testkarte-883110000092414")
        response = await stack.request(
            "GET",
            "/tim-authenticate",
            params={"mxId": SERVER},
            headers={"X-Matrix-OpenID-Token": "tok-alice"},
        )
        assert response.status_code == 503
        assert homeserver.userinfo_calls == 0


async def test_ml_123485_search_token_is_not_a_provider_token(matrix: MatrixSetup) -> None:
    issued = (await matrix.authenticate(SERVER, "tok-alice")).json()["access_token"]
    response = await matrix.stack.request("GET", "/ti-provider-authenticate", issued)
    assert response.status_code == 403


# --- discovery, directly on the resolver ---------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        yield client


def _resolver(
    fed_pki: LocalPKI, session: aiohttp.ClientSession, homeserver: Homeserver
) -> MatrixResolver:
    resolver = MatrixResolver(MatrixConfig(ca_file=fed_pki.ca_cert_path, timeout=5), session)
    resolver.https_port = homeserver.port
    resolver.default_port = homeserver.port
    return resolver


async def test_ml_123485_discovery_follows_well_known_delegation(
    fed_pki: LocalPKI, session: aiohttp.ClientSession, homeserver: Homeserver
) -> None:
    homeserver.well_known = {"m.server": f"localhost:{homeserver.port}"}
    homeserver.tokens["tok-local"] = "@bob:localhost"
    resolver = _resolver(fed_pki, session, homeserver)
    server = parse_server_name("localhost")
    target = await resolver.resolve(server)
    assert target == Target(
        "localhost", homeserver.port, "localhost", f"localhost:{homeserver.port}"
    )
    assert await resolver.userinfo(server, "tok-local") == "@bob:localhost"
    assert homeserver.well_known_calls == 1, "the discovery result is cached"
    with pytest.raises(InvalidToken):
        await resolver.userinfo(server, "nope")


async def test_ml_123485_discovery_without_well_known_uses_the_default_port(
    fed_pki: LocalPKI, session: aiohttp.ClientSession, homeserver: Homeserver
) -> None:
    resolver = _resolver(fed_pki, session, homeserver)
    target = await resolver.resolve(parse_server_name("localhost"))
    assert target == Target("localhost", homeserver.port, "localhost", "localhost")
    assert homeserver.well_known_calls == 1


async def test_ml_123485_explicit_port_and_ip_literals_skip_well_known(
    fed_pki: LocalPKI, session: aiohttp.ClientSession, homeserver: Homeserver
) -> None:
    resolver = _resolver(fed_pki, session, homeserver)
    homeserver.tokens["tok-ip"] = f"@carol:127.0.0.1:{homeserver.port}"
    server = parse_server_name(f"127.0.0.1:{homeserver.port}")
    assert await resolver.userinfo(server, "tok-ip") == f"@carol:127.0.0.1:{homeserver.port}"
    explicit = await resolver.resolve(parse_server_name(f"localhost:{homeserver.port}"))
    assert explicit == Target(
        "localhost", homeserver.port, "localhost", f"localhost:{homeserver.port}"
    )
    assert homeserver.well_known_calls == 0


async def test_ml_123485_certificate_must_match_the_server_name(
    fed_pki: LocalPKI, session: aiohttp.ClientSession, homeserver: Homeserver
) -> None:
    config = MatrixConfig(
        routes={"other.timkit.test": f"127.0.0.1:{homeserver.port}"},
        ca_file=fed_pki.ca_cert_path,
        timeout=5,
    )
    resolver = MatrixResolver(config, session)
    with pytest.raises(Unavailable):
        await resolver.userinfo(parse_server_name("other.timkit.test"), "tok-alice")
    assert homeserver.userinfo_calls == 0


def test_server_names_are_parsed_per_the_matrix_grammar() -> None:
    assert parse_server_name("Example.ORG") == ServerName("example.org", None)
    assert parse_server_name("example.org:8448") == ServerName("example.org", 8448)
    assert parse_server_name("[::1]:8448") == ServerName("::1", 8448)
    assert str(parse_server_name("[::1]")) == "[::1]"
    for bad in ("", "a/b", "a:0", "a:b", "exa mple.org", "a\n", "[::1]x", "ä.example", "a:\uff11"):
        with pytest.raises(ValueError, match=r"."):
            parse_server_name(bad)
    assert url_notation("@alice:example.org:8448") == "matrix:u/alice:example.org:8448"


async def test_routes_file_is_followed_as_it_changes(tmp_path: Path) -> None:
    names = NameTable(tmp_path / "names.json")
    config = MatrixConfig(
        routes={"static.tim.test": "127.0.0.1:1000", "both.tim.test": "127.0.0.1:1001"},
        routes_file=names.path,
    )
    async with aiohttp.ClientSession() as session:
        resolver = MatrixResolver(config, session)
        names.set("new.tim.test", "127.0.0.1:2000")
        names.set("both.tim.test", "127.0.0.1:2001")
        new = await resolver.resolve(parse_server_name("new.tim.test"))
        assert new == Target("127.0.0.1", 2000, "new.tim.test", "new.tim.test")
        both = await resolver.resolve(parse_server_name("both.tim.test"))
        assert both.port == 2001
        static = await resolver.resolve(parse_server_name("static.tim.test"))
        assert static.port == 1000
        names.remove("both.tim.test")
        assert (await resolver.resolve(parse_server_name("both.tim.test"))).port == 1001


def test_bad_static_route_is_a_config_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be 'host:port'"):
        MatrixConfig(routes={"x.tim.test": "127.0.0.1"})
