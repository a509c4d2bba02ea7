"""Rohdatenerfassung of logins (AF_10057) and events (AF_10063) at the Messenger-Proxy, through
the real proxy in front of the Synapse stand-in: one record per run, whatever the spelling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest

from tests.proxy.stand_ins import PASSWORD, FakeSynapse, Stack, running_stack
from timkit.core.request_target import parse_target
from timkit.proxy.inbound.use_cases import EVENTS, LOGIN, is_interim, use_case

SERVER = "praxis.tim.test"
TOKEN = "alice-access-token"
ALICE = f"@alice:{SERVER}"
RECORD_KEYS = {"use_case", "component", "start", "duration_ms", "result", "status"}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, FakeSynapse(SERVER, users={TOKEN: ALICE}), [SERVER]) as s:
        yield s


def _runs(stack: Stack) -> list[tuple[str, str, int | None]]:
    """The records of logins and events (the list pull is AF_10064's)."""
    return [
        (r["use_case"], r["result"], r["status"])
        for r in stack.records()
        if r["use_case"] in (LOGIN, EVENTS)
    ]


def _login(password: str) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": password,
    }


def _assert_no_personal_data(stack: Stack, *secrets: str) -> None:
    path = stack.proxy.config.federation_list.state_file.parent / "rawdata.jsonl"
    text = path.read_text()
    for secret in ("alice", SERVER, *secrets):
        assert secret not in text
    for record in stack.records():
        assert set(record) == RECORD_KEYS
        assert record["component"] == "proxy"


async def test_ml_132587_every_login_is_one_run_of_af_10057(stack: Stack) -> None:
    for path, password, status in (
        ("/_matrix/client/v3/login", PASSWORD, 200),
        ("/_matrix/client/r0/login", "falsch", 403),
        ("/_matrix/client/api/v1/login", PASSWORD, 200),
        ("/_matrix/client/unstable/login", PASSWORD, 200),
        ("/_matrix/client/v3/log%69n", "falsch", 403),  # an encoded spelling: recorded the same
        ("/_matrix/client/%763/login", PASSWORD, 200),
    ):
        response = await stack.http.post(path, json=_login(password))
        assert response.status_code == status, path
    assert _runs(stack) == [
        (LOGIN, "success", 200),
        (LOGIN, "failure", 403),
        (LOGIN, "success", 200),
        (LOGIN, "success", 200),
        (LOGIN, "failure", 403),
        (LOGIN, "success", 200),
    ]
    _assert_no_personal_data(stack, PASSWORD, "falsch")


async def test_ml_132587_reading_the_login_flows_is_no_run(stack: Stack) -> None:
    assert (await stack.http.get("/_matrix/client/v3/login")).status_code == 200
    assert (await stack.http.post("/_matrix/client/v3/login/get_token", json={})).status_code == 200
    assert _runs(stack) == []


async def test_ml_132587_a_registration_is_one_run_its_authentication_steps_are_not(
    stack: Stack,
) -> None:
    """Registration runs like login (seed 002 §6.4); its User-Interactive Authentication
    401 is a step of the run, not its end."""
    first = await stack.http.post("/_matrix/client/v3/register", json={"username": "alice"})
    assert first.status_code == 401
    assert "flows" in first.json()
    assert _runs(stack) == []
    done = await stack.http.post(
        "/_matrix/client/v3/regist%65r",
        json={"username": "alice", "auth": {"type": "m.login.dummy", "session": "s1"}},
    )
    assert done.status_code == 200
    assert _runs(stack) == [(LOGIN, "success", 200)]
    _assert_no_personal_data(stack)


async def test_ml_132587_a_login_the_client_check_refuses_is_a_failed_run(tmp_path: Path) -> None:
    supported = {"client_id": "praxis-client", "secret_sha256": sha256(b"geheim").hexdigest()}
    async with running_stack(
        tmp_path, FakeSynapse(SERVER), [SERVER], inbound={"supported_clients": [supported]}
    ) as checked:
        refused = await checked.http.post("/_matrix/client/v3/login", json=_login(PASSWORD))
        assert refused.status_code == 401
        assert checked.synapse.seen == []
        assert _runs(checked) == [(LOGIN, "failure", 401)]


async def test_ml_132591_every_event_sent_is_one_run_of_af_10063(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    message = {"msgtype": "m.text", "body": "Befund liegt vor"}
    for method, path in (
        ("PUT", "/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t1"),
        ("POST", "/_matrix/client/r0/rooms/%21a%3Ab/send/m.room.message"),
        ("PUT", "/_matrix/client/v3/rooms/%21a%3Ab/s%65nd/m.room.message/t2"),  # encoded
        ("PUT", "/_matrix/client/unstable/org.example/rooms/!a:b/send/m.reaction/t3"),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/state/m.room.name"),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/state/m.room.topic/"),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/redact/%24event%3Ab/t4"),
        ("POST", "/_matrix/client/api/v1/rooms/!a:b/redact/%24event%3Ab"),
    ):
        response = await stack.http.request(method, path, json=message, headers=auth)
        assert response.status_code == 200, path
    assert _runs(stack) == [(EVENTS, "success", 200)] * 8
    _assert_no_personal_data(stack, "Befund")


async def test_ml_132591_a_refused_event_is_a_failed_run_and_reads_are_none(
    stack: Stack,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refused = await stack.http.put(
        "/_matrix/client/v3/rooms/!a:b/send/m.room.member/t1",
        json={"membership": "join"},
        headers=auth,
    )
    assert refused.status_code == 403
    for path in (
        "/_matrix/client/v3/rooms/!a:b/state/m.room.name",
        "/_matrix/client/v3/rooms/!a:b/messages",
    ):
        assert (await stack.http.get(path, headers=auth)).status_code == 200
    # a membership state event is a membership change (an invite is AF_10104/AF_10061)
    left = await stack.http.put(
        f"/_matrix/client/v3/rooms/!a:b/state/m.room.member/{ALICE}",
        json={"membership": "leave"},
        headers=auth,
    )
    assert left.status_code == 200
    assert _runs(stack) == [(EVENTS, "failure", 403)]


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        ("POST", "/_matrix/client/v3/login", LOGIN),
        ("POST", "/_matrix/client/unstable/org.example/login", LOGIN),
        ("POST", "/_matrix/client/v3/login/", None),  # Synapse routes no login there
        ("PUT", "/_matrix/client/v3/login", None),
        ("POST", "/_matrix/client/v4/login", None),  # a version Synapse does not serve
        ("POST", "/_matrix/client/v3/register/available", None),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/send/m.room.message/t", EVENTS),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/state/m.room.member/@u:b", None),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/typing/@u:b", None),
        ("GET", "/_matrix/client/v3/rooms/!a:b/state/m.room.name", None),
        ("DELETE", "/_matrix/client/v3/rooms/!a:b/send/m.room.message/t", None),
    ],
)
def test_which_requests_are_runs(method: str, target: str, expected: str | None) -> None:
    assert use_case(method, parse_target(target)) == expected


def test_only_an_authentication_step_of_a_login_is_interim() -> None:
    step = b'{"session": "s", "flows": [{"stages": ["m.login.dummy"]}]}'
    assert is_interim(LOGIN, 401, step)
    assert not is_interim(LOGIN, 401, b'{"errcode": "M_UNKNOWN_TOKEN"}')
    assert not is_interim(LOGIN, 401, b"not json")
    assert not is_interim(LOGIN, 401, None)
    assert not is_interim(LOGIN, 403, step)
    assert not is_interim(EVENTS, 401, step)
