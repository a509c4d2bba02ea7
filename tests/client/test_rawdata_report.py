"""ML-132588 from the client's side: a measured AF_10058 run reaches the real Messenger-Proxy's
intake (in front of the Synapse stand-in) and lands in its raw-data records; a refused
delivery never fails the use case."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.proxy.stand_ins import FakeSynapse, Stack, running_stack
from timkit.client.matrix_api import MatrixApi
from timkit.client.rawdata_report import PUBLISH, measured_run, report_run
from timkit.core.errors import Codes, TimkitError
from timkit.core.process import free_port

SERVER = "praxis.tim.test"
TOKEN = "hba-access-token"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    users = {TOKEN: f"@dr.hausarzt:{SERVER}"}
    async with running_stack(tmp_path, FakeSynapse(SERVER, users=users), [SERVER]) as s:
        yield s


def _api(stack: Stack, token: str = TOKEN) -> MatrixApi:
    return MatrixApi(stack.http, f"https://127.0.0.1:{stack.proxy.inbound_port}", token)


def _client_runs(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.records() if r["component"] == "client"]


async def test_ml_132588_a_reported_run_is_recorded_by_the_messenger_proxy(stack: Stack) -> None:
    await report_run(_api(stack), PUBLISH, 640.25, "success", 200)
    (run,) = _client_runs(stack)
    assert (run["use_case"], run["duration_ms"], run["result"], run["status"]) == (
        PUBLISH,
        640.25,
        "success",
        200,
    )


async def test_ml_132588_a_measured_run_reports_its_outcome(stack: Stack) -> None:
    async with measured_run(_api(stack), PUBLISH) as run:
        run.status = 201
    with pytest.raises(TimkitError):
        async with measured_run(_api(stack), PUBLISH):
            raise TimkitError(403, Codes.FORBIDDEN, "not the own PractitionerRole")
    ok, refused = _client_runs(stack)
    assert (ok["result"], ok["status"]) == ("success", 201)
    assert (refused["result"], refused["status"]) == ("failure", 403)
    assert 0 <= ok["duration_ms"] < 5000


async def test_ml_132588_a_refused_delivery_is_logged_never_raised(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="timkit.client.rawdata_report"):
        await report_run(_api(stack, "unknown-token"), PUBLISH, 10.0, "success", 200)
        await report_run(_api(stack), "AF_10057", 10.0, "success", 200)
        unreachable = MatrixApi(stack.http, f"https://127.0.0.1:{free_port()}", TOKEN)
        await report_run(unreachable, PUBLISH, 10.0, "success", 200)
    assert _client_runs(stack) == []
    messages = [r.getMessage() for r in caplog.records]
    for status in ("401", "400", "502"):
        assert any(f"not delivered: {status}" in m for m in messages), messages
