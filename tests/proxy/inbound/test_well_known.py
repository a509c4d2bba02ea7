"""``/.well-known/`` on the proxy's public listener: exactly the client and server discovery
documents reach Synapse, through the real proxy in front of the Synapse stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.proxy.stand_ins import FakeSynapse, Stack, running_stack

SERVER = "praxis.tim.test"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, FakeSynapse(SERVER), [SERVER]) as s:
        yield s


async def test_af_10057_clients_discover_the_homeserver_at_well_known_matrix_client(
    stack: Stack,
) -> None:
    for path in (
        "/.well-known/matrix/client",
        "/.well-known/matrix/cli%65nt",  # an encoded spelling is the same document
        "/.well-known/matrix/server",  # other homeservers' discovery, relayed as before
    ):
        response = await stack.http.get(path)
        assert response.status_code == 200, path
        assert stack.last().raw_path == path
    assert (await stack.http.head("/.well-known/matrix/client")).status_code == 200
    preflight = await stack.http.options(
        "/.well-known/matrix/client", headers={"Origin": "https://app.example"}
    )
    assert preflight.status_code == 200
    assert len(stack.synapse.seen) == 5


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/matrix/support",
        "/.well-known/openid-configuration",
        "/.well-known/matrix/client/",
        "/.well-known/matrix/client/x",
        "/.well-known/matrix/client%2Fx",
        "/.well-known/matrix",
        "/.well-known",
        "/.w%65ll-known/matrix/support",
    ],
)
async def test_other_well_known_paths_never_reach_synapse(stack: Stack, path: str) -> None:
    response = await stack.http.get(path)
    assert response.status_code in (400, 404), path
    assert response.json()["errcode"] in ("M_UNRECOGNIZED", "M_INVALID_PARAM")
    assert stack.synapse.seen == []


async def test_well_known_documents_are_read_only(stack: Stack) -> None:
    response = await stack.http.put("/.well-known/matrix/client", json={})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.json()["errcode"] == "M_UNRECOGNIZED"
    assert stack.synapse.seen == []
