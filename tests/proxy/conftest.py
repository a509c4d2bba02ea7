"""Messenger-Proxy fixtures: a homeserver stand-in for Matrix OpenID userinfo.

``homeserver`` is a small real aiohttp server answering Synapse's
``GET /_matrix/federation/v1/openid/userinfo`` like Synapse: ``{"sub"}`` for a known token,
401 ``M_UNKNOWN_TOKEN`` otherwise; it counts the requests it answered. The OpenID validator's
tests (``test_openid.py``) and the Freigabeliste API's (``contacts/``) ask it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from timkit.proxy.openid import USERINFO_PATH

SERVER = "praxis.tim.test"
ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"


@dataclass
class Homeserver:
    """The userinfo stand-in: ``tokens`` maps token → sub; ``hits`` counts requests."""

    url: str
    tokens: dict[str, str] = field(default_factory=dict)
    hits: int = 0


@pytest.fixture
async def homeserver() -> AsyncIterator[Homeserver]:
    state = Homeserver(url="")

    async def userinfo(request: web.Request) -> web.Response:
        state.hits += 1
        sub = state.tokens.get(request.query.get("access_token", ""))
        if sub is None:
            return web.json_response(
                {"errcode": "M_UNKNOWN_TOKEN", "error": "Access token unknown or expired"},
                status=401,
            )
        return web.json_response({"sub": sub})

    app = web.Application()
    app.router.add_get(USERINFO_PATH, userinfo)
    server = TestServer(app)
    await server.start_server()
    state.url = str(server.make_url("")).rstrip("/")
    state.tokens.update({"alice-token": ALICE, "bob-token": BOB})
    yield state
    await server.close()
