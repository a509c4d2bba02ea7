"""IDP stand-in fixtures: the real app in-process over TLS, on a free port, with a test clock."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from timkit.core.config import parse_config
from timkit.core.process import free_port
from timkit.core.tls import client_ssl_context
from timkit.idp.api import create_app
from timkit.idp.cards import load_cards
from timkit.idp.config import IdpConfig
from timkit.idp.handlers import Provider, s256
from timkit.idp.keys import load_signing_key
from timkit.idp.service import tls_context

CLIENT = "registration-service"
SECRET = "s3cret"
PUBLIC = "public-app"
REDIRECT = "https://rp.example/signin"


@dataclass
class Clock:
    """Epoch seconds that start at the real time and then only move when told to."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class Idp:
    """A running IDP stand-in and an HTTPS client trusting its CA.

    Attributes:
        url: its issuer and base URL.
        provider: the provider behind it.
        clock: the clock its codes and tokens use.
        http: client that follows no redirects.
        verifier: the PKCE verifier :meth:`auth_params` derives its challenge from.
    """

    url: str
    provider: Provider
    clock: Clock
    http: httpx.AsyncClient
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    def auth_params(self, **overrides: str | None) -> dict[str, str]:
        """A valid authorization request of :data:`CLIENT`; ``None`` drops a parameter."""
        params: dict[str, str | None] = {
            "client_id": CLIENT,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid ti-messenger",
            "state": "state-123",
            "nonce": "nonce-456",
            "code_challenge": s256(self.verifier),
            "code_challenge_method": "S256",
            **overrides,
        }
        return {k: v for k, v in params.items() if v is not None}

    async def page(self, **overrides: str | None) -> httpx.Response:
        """``GET /auth`` with :meth:`auth_params`."""
        return await self.http.get(self.url + "/auth", params=self.auth_params(**overrides))

    async def choose(self, card: str = "praxis-sonnenschein", **overrides: str | None) -> str:
        """The code for ``card``, the way a script gets it: one ``POST /auth``."""
        form = {**self.auth_params(**overrides), "card": card}
        response = await self.http.post(self.url + "/auth", data=form)
        assert response.status_code == 302, response.text
        query = httpx.URL(response.headers["location"]).params
        assert query["state"] == form["state"]
        return query["code"]

    async def token(self, code: str, **overrides: str | None) -> httpx.Response:
        """``POST /token`` for ``code`` as :data:`CLIENT` (Basic auth unless overridden)."""
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": self.verifier,
            **overrides,
        }
        data = {k: v for k, v in form.items() if v is not None}
        if "client_id" in overrides:
            return await self.http.post(self.url + "/token", data=data)
        return await self.http.post(self.url + "/token", data=data, auth=(CLIENT, SECRET))


MakeIdp = Callable[..., Awaitable[Idp]]


@pytest.fixture
async def make_idp(tmp_path: Path) -> AsyncIterator[MakeIdp]:
    """Start IDPs with config overrides (``signing="BP256R1"``, ``cards_file=...``)."""
    runners: list[web.AppRunner] = []
    clients: list[httpx.AsyncClient] = []

    async def make(**overrides: Any) -> Idp:
        port = free_port()
        config = parse_config(
            IdpConfig,
            {
                "port": port,
                "pki_dir": tmp_path / "pki",
                "clients": [
                    {"client_id": CLIENT, "redirect_uris": [REDIRECT], "client_secret": SECRET},
                    {"client_id": PUBLIC, "redirect_uris": [REDIRECT]},
                ],
                **overrides,
            },
        )
        clock = Clock()
        provider = Provider(config, load_cards(config.cards_file), load_signing_key(config), clock)
        runner = web.AppRunner(create_app(provider), access_log=None)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls_context(config)).start()
        http = httpx.AsyncClient(verify=client_ssl_context(tmp_path / "pki" / "ca.crt"), timeout=10)
        clients.append(http)
        return Idp(config.public_issuer(), provider, clock, http)

    yield make
    for http in clients:
        await http.aclose()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def idp(make_idp: MakeIdp) -> Idp:
    """An ES256 IDP with the demo cards."""
    return await make_idp()


def request_id(page: str) -> str:
    """The hidden ``request_id`` of a card-selection page."""
    match = re.search(r'name="request_id" value="([^"]+)"', page)
    assert match, page
    return match.group(1)
