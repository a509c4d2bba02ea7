"""Server discovery (AF_10057) against a real TLS server standing in for a domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from timkit.client.discovery import discover, origin_of
from timkit.core.errors import TimkitError
from timkit.core.http import async_client
from timkit.core.tls import LocalPKI, server_ssl_context
from timkit.core.web import running_app


class Domain:
    """An HTTPS origin answering ``/.well-known/matrix/client`` and ``/versions`` as told."""

    def __init__(self) -> None:
        self.well_known: Any = 404
        self.versions: Any = {"versions": ["v1.3"]}
        self.origin = ""

    def app(self) -> web.Application:
        async def well_known(_: web.Request) -> web.StreamResponse:
            if isinstance(self.well_known, int):
                return web.Response(status=self.well_known)
            if isinstance(self.well_known, str):
                return web.Response(text=self.well_known)
            return web.json_response(self.well_known)

        async def versions(_: web.Request) -> web.StreamResponse:
            return web.json_response(self.versions)

        app = web.Application()
        app.router.add_get("/.well-known/matrix/client", well_known)
        app.router.add_get("/_matrix/client/versions", versions)
        return app


@pytest.fixture
async def domain(tmp_path: Path) -> AsyncIterator[tuple[Domain, Path]]:
    pki = LocalPKI(tmp_path / "pki")
    cert = pki.ensure_server_cert("hs", ["127.0.0.1", "localhost"])
    server = Domain()
    async with running_app(server.app(), "127.0.0.1", 0, server_ssl_context(cert)) as runner:
        server.origin = f"https://127.0.0.1:{runner.addresses[0][1]}"
        yield server, pki.ca_cert_path


async def test_af_10057_well_known_names_the_homeserver(domain: tuple[Domain, Path]) -> None:
    server, ca = domain
    server.well_known = {"m.homeserver": {"base_url": server.origin + "/"}}
    async with async_client(ca) as http:
        assert await discover(http, "x.tim.test", {"x.tim.test": server.origin}) == server.origin


async def test_without_well_known_the_domain_is_the_homeserver(
    domain: tuple[Domain, Path],
) -> None:
    server, ca = domain
    async with async_client(ca) as http:
        assert await discover(http, "x.tim.test", {"x.tim.test": server.origin}) == server.origin


@pytest.mark.parametrize(
    "well_known",
    [
        "not json",
        {"m.homeserver": {}},
        {"m.homeserver": {"base_url": "http://plain.example"}},
        {"m.homeserver": "x"},
        500,
    ],
)
async def test_a_broken_well_known_is_a_clear_502(
    well_known: Any, domain: tuple[Domain, Path]
) -> None:
    server, ca = domain
    server.well_known = well_known
    async with async_client(ca) as http:
        with pytest.raises(TimkitError) as failed:
            await discover(http, "x.tim.test", {"x.tim.test": server.origin})
    assert failed.value.status == 502
    assert "x.tim.test" in failed.value.message


async def test_a_server_that_is_no_homeserver_is_refused(domain: tuple[Domain, Path]) -> None:
    server, ca = domain
    server.versions = {"nothing": True}
    async with async_client(ca) as http:
        with pytest.raises(TimkitError) as failed:
            await discover(http, "x.tim.test", {"x.tim.test": server.origin})
    assert "not a Matrix homeserver" in failed.value.message


async def test_an_unreachable_domain_is_a_clear_502(tmp_path: Path) -> None:
    async with async_client(None, timeout=2) as http:
        with pytest.raises(TimkitError) as failed:
            await discover(http, "x.tim.test", {"x.tim.test": "https://127.0.0.1:9"})
    assert failed.value.status == 502


def test_hosts_override_dns_only_for_their_domains() -> None:
    assert origin_of("a.test", {"a.test": "https://127.0.0.1:1/"}) == "https://127.0.0.1:1"
    assert origin_of("b.test", {"a.test": "https://127.0.0.1:1"}) == "https://b.test"
