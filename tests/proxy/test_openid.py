"""Matrix OpenID tokens checked at the homeserver's userinfo endpoint (a real HTTP stand-in)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.proxy.conftest import ALICE, SERVER, Homeserver
from timkit.core.errors import TimkitError, UpstreamError
from timkit.core.process import free_port
from timkit.proxy.openid import USERINFO_PATH, OpenIdValidator


@pytest.fixture
async def failing_homeserver() -> AsyncIterator[str]:
    """A homeserver stand-in that fails: 500, non-JSON, no ``sub``, or too slow."""

    async def userinfo(request: web.Request) -> web.Response:
        token = request.query["access_token"]
        if token == "500":
            return web.json_response({"errcode": "M_UNKNOWN"}, status=500)
        if token == "notjson":
            return web.Response(text="<html>")
        if token == "slow":
            await asyncio.Event().wait()  # never answers; the server's close cancels it
        return web.json_response({"user": ALICE})

    app = web.Application()
    app.router.add_get(USERINFO_PATH, userinfo)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_known_token_gives_the_user(homeserver: Homeserver) -> None:
    validator = OpenIdValidator(homeserver.url, SERVER, cache_seconds=60)
    try:
        assert await validator.validate("alice-token") == ALICE
    finally:
        await validator.close()


async def test_valid_answer_is_cached_until_it_expires(homeserver: Homeserver) -> None:
    clock = Monotonic()
    async with aiohttp.ClientSession() as session:
        validator = OpenIdValidator(homeserver.url, SERVER, 60, session, clock=clock)
        assert await validator.validate("alice-token") == ALICE
        assert await validator.validate("alice-token") == ALICE
        assert homeserver.hits == 1  # the second call did not ask the homeserver
        clock.now += 61
        del homeserver.tokens["alice-token"]  # expired at the homeserver meanwhile
        with pytest.raises(TimkitError) as caught:
            await validator.validate("alice-token")
        assert caught.value.status == 401
        assert homeserver.hits == 2
        await validator.close()
        assert not session.closed  # the caller's session stays the caller's


async def test_cache_is_bounded(homeserver: Homeserver) -> None:
    homeserver.tokens.update({f"t{i}": f"@u{i}:{SERVER}" for i in range(3)})
    validator = OpenIdValidator(homeserver.url, SERVER, 60, max_cached=2)
    try:
        for i in range(3):
            await validator.validate(f"t{i}")
        assert homeserver.hits == 3
        await validator.validate("t2")  # newest still cached
        assert homeserver.hits == 3
        await validator.validate("t0")  # oldest evicted
        assert homeserver.hits == 4
    finally:
        await validator.close()


async def test_zero_cache_seconds_asks_every_time(homeserver: Homeserver) -> None:
    validator = OpenIdValidator(homeserver.url, SERVER, cache_seconds=0)
    try:
        await validator.validate("alice-token")
        await validator.validate("alice-token")
        assert homeserver.hits == 2
    finally:
        await validator.close()


async def test_unknown_token_is_401_and_not_cached(homeserver: Homeserver) -> None:
    validator = OpenIdValidator(homeserver.url, SERVER, cache_seconds=60)
    try:
        for _ in range(2):
            with pytest.raises(TimkitError) as caught:
                await validator.validate("forged")
            assert (caught.value.status, caught.value.errcode) == (401, "M_UNKNOWN_TOKEN")
        assert homeserver.hits == 2
    finally:
        await validator.close()


@pytest.mark.parametrize("token", ["", "a b", "tök", "x" * 5000, "tab\there"])
async def test_malformed_token_is_refused_without_asking(
    homeserver: Homeserver, token: str
) -> None:
    validator = OpenIdValidator(homeserver.url, SERVER, cache_seconds=60)
    try:
        with pytest.raises(TimkitError) as caught:
            await validator.validate(token)
        assert caught.value.status == 401
        assert homeserver.hits == 0
    finally:
        await validator.close()


@pytest.mark.parametrize("sub", ["@mallory:klinik.tim.test", f"@mallory:{SERVER}.evil", "nobody"])
async def test_user_of_another_server_is_refused(homeserver: Homeserver, sub: str) -> None:
    """The Freigabeliste is per Messenger-Service (seed 002 §4.3.3.1.3)."""
    homeserver.tokens["foreign"] = sub
    validator = OpenIdValidator(homeserver.url, SERVER, cache_seconds=60)
    try:
        for _ in range(2):
            with pytest.raises(TimkitError) as caught:
                await validator.validate("foreign")
            assert (caught.value.status, caught.value.errcode) == (403, "M_FORBIDDEN")
        assert homeserver.hits == 2  # a refusal is never cached
    finally:
        await validator.close()


async def test_server_name_is_compared_case_blind(homeserver: Homeserver) -> None:
    homeserver.tokens["upper"] = "@alice:Praxis.TIM.test"
    validator = OpenIdValidator(homeserver.url, SERVER, cache_seconds=60)
    try:
        assert await validator.validate("upper") == "@alice:Praxis.TIM.test"
    finally:
        await validator.close()


async def test_homeserver_down_is_502() -> None:
    validator = OpenIdValidator(f"http://127.0.0.1:{free_port()}", SERVER, cache_seconds=60)
    try:
        with pytest.raises(UpstreamError) as caught:
            await validator.validate("alice-token")
        assert caught.value.status == 502
    finally:
        await validator.close()


async def test_homeserver_nonsense_is_502(failing_homeserver: str) -> None:
    validator = OpenIdValidator(failing_homeserver, SERVER, cache_seconds=60, timeout=0.5)
    try:
        for token in ("500", "notjson", "nosub", "slow"):
            with pytest.raises(UpstreamError) as caught:
                await validator.validate(token)
            assert caught.value.status == 502, token
    finally:
        await validator.close()
