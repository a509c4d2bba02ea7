"""ML-132588: a client delivers its measured AF_10058 run to the Messenger-Proxy, through the
real proxy in front of the Synapse stand-in (which confirms access tokens with whoami)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.proxy.stand_ins import FakeSynapse, Stack, running_stack
from timkit.core.process import free_port

SERVER = "praxis.tim.test"
TOKEN = "hba-access-token"
USER = f"@dr.hausarzt:{SERVER}"
RUNS = "/tim-rawdata/v1/runs"
RUN = {"use_case": "AF_10058", "duration_ms": 812.5, "result": "success", "status": 200}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, FakeSynapse(SERVER, users={TOKEN: USER}), [SERVER]) as s:
        yield s


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _client_records(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.records() if r["component"] == "client"]


def _reached_synapse(stack: Stack) -> list[str]:
    return [seen.raw_path for seen in stack.synapse.seen if "rawdata" in seen.raw_path]


async def test_ml_132588_a_client_delivers_its_measured_af_10058_run(stack: Stack) -> None:
    before = datetime.now(UTC)
    response = await stack.http.post(RUNS, json=RUN, headers=_auth())
    assert response.status_code == 200, response.text
    assert response.json() == {}
    failed = {**RUN, "result": "failure", "status": 403, "duration_ms": 40}
    spelled = await stack.http.post("/tim-r%61wdata/v1/run%73", json=failed, headers=_auth())
    assert spelled.status_code == 200, spelled.text
    first, second = _client_records(stack)
    assert (first["use_case"], first["result"], first["status"]) == ("AF_10058", "success", 200)
    assert first["duration_ms"] == 812.5
    assert (second["result"], second["status"], second["duration_ms"]) == ("failure", 403, 40)
    # the run started duration_ms before it was delivered
    start = datetime.fromisoformat(first["start"])
    assert before.timestamp() - 0.9 <= start.timestamp() <= time.time()
    text = (stack.proxy.config.federation_list.state_file.parent / "rawdata.jsonl").read_text()
    assert "hausarzt" not in text
    assert SERVER not in text
    assert _reached_synapse(stack) == []


async def test_ml_132588_only_a_token_the_homeserver_knows_may_deliver(stack: Stack) -> None:
    for headers, errcode in (
        ({}, "M_MISSING_TOKEN"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "M_MISSING_TOKEN"),
        ({"Authorization": "Bearer"}, "M_MISSING_TOKEN"),
        (_auth("guessed-token"), "M_UNKNOWN_TOKEN"),
    ):
        response = await stack.http.post(RUNS, json=RUN, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["errcode"] == errcode
        assert "ML-132588" in response.json()["error"]
    # a token in the query is not read: only the Authorization header is
    query = await stack.http.post(RUNS + f"?access_token={TOKEN}", json=RUN)
    assert query.status_code == 401
    status, document = await stack.raw(
        f"POST {RUNS} HTTP/1.1\nHost: {SERVER}\nAuthorization: Bearer {TOKEN}\n"
        "Authorization: Bearer guessed-token\nContent-Type: application/json",
        b'{"use_case": "AF_10058", "duration_ms": 1, "result": "success", "status": 200}',
    )
    assert (status, document["errcode"]) == (401, "M_UNAUTHORIZED")
    assert _client_records(stack) == []


async def test_ml_132588_a_homeserver_that_cannot_confirm_the_token_refuses(
    stack: Stack,
) -> None:
    stack.proxy.relay.base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    response = await stack.http.post(RUNS, json=RUN, headers=_auth())
    assert response.status_code == 502
    assert response.json()["errcode"] == "TIMKIT_UPSTREAM"
    assert "Connect" not in response.text
    assert _client_records(stack) == []


@pytest.mark.parametrize(
    ("body", "status", "errcode", "named"),
    [
        ({**RUN, "use_case": "AF_10057"}, 400, "M_INVALID_PARAM", "use_case"),
        ({**RUN, "use_case": "@dr.hausarzt:praxis.tim.test"}, 400, "M_INVALID_PARAM", "use_case"),
        ({k: v for k, v in RUN.items() if k != "duration_ms"}, 400, "M_BAD_JSON", "duration_ms"),
        ({**RUN, "user_id": USER}, 400, "M_BAD_JSON", "user_id"),
        ({**RUN, "status": "200"}, 400, "M_BAD_JSON", "status"),
        ({**RUN, "status": True}, 400, "M_BAD_JSON", "status"),
        ({**RUN, "status": 200.0}, 400, "M_BAD_JSON", "status"),
        ({**RUN, "status": 700}, 400, "M_INVALID_PARAM", "status"),
        ({**RUN, "duration_ms": -1}, 400, "M_INVALID_PARAM", "duration_ms"),
        ({**RUN, "duration_ms": 1e12}, 400, "M_INVALID_PARAM", "duration_ms"),
        ({**RUN, "duration_ms": "812"}, 400, "M_BAD_JSON", "duration_ms"),
        ({**RUN, "result": "ok"}, 400, "M_INVALID_PARAM", "result"),
        ([RUN], 400, "M_BAD_JSON", "not a JSON object"),
        (b'{"use_case": ', 400, "M_NOT_JSON", "not JSON"),
        (b"\xff", 400, "M_NOT_JSON", "not UTF-8"),
        (b" " * 5000, 413, "M_TOO_LARGE", "larger than 4096 bytes"),
    ],
)
async def test_ml_132588_runs_are_validated_strictly(
    stack: Stack, body: Any, status: int, errcode: str, named: str
) -> None:
    if isinstance(body, bytes):
        response = await stack.http.post(RUNS, content=body, headers=_auth())
    else:
        response = await stack.http.post(RUNS, json=body, headers=_auth())
    assert response.status_code == status, response.text
    assert response.json()["errcode"] == errcode
    assert named in response.json()["error"]
    assert "ML-132588" in response.json()["error"]
    assert _client_records(stack) == []


async def test_ml_132588_other_paths_and_methods_of_the_intake_never_reach_synapse(
    stack: Stack,
) -> None:
    wrong_method = await stack.http.get(RUNS, headers=_auth())
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert wrong_method.json()["errcode"] == "M_UNRECOGNIZED"
    for path in (
        "/tim-rawdata/v1/runs/",
        "/tim-rawdata/v2/runs",
        "/tim-rawdata",
        "/tim-r%61wdata/x",
    ):
        response = await stack.http.post(path, json=RUN, headers=_auth())
        assert response.status_code == 404, path
        assert response.json()["errcode"] == "M_UNRECOGNIZED"
    assert _reached_synapse(stack) == []
    assert _client_records(stack) == []


async def test_ml_132588_a_flood_of_runs_is_refused(stack: Stack) -> None:
    statuses = [
        (await stack.http.post(RUNS, json=RUN, headers=_auth())).status_code for _ in range(31)
    ]
    assert statuses[:30] == [200] * 30
    limited = await stack.http.post(RUNS, json=RUN, headers=_auth())
    assert limited.status_code == 429
    assert limited.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert limited.json()["retry_after_ms"] > 0
    assert len(_client_records(stack)) == 30
