"""The HTTP edge: validation errors, rejected pushkeys, 502 on unreachable devices, metrics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.push.conftest import SCRIPTED, Gateway, gateway, push_config
from timkit.push.backends.base import PermanentPushError, PushkeyRejected, TemporaryPushError


def note(*pushkeys: str, event_id: str | None = "$e1", app_id: str = "app") -> dict[str, Any]:
    """An ``event_id_only`` notification for devices of ``app_id`` with these pushkeys."""
    body: dict[str, Any] = {
        "room_id": "!r:a.tim.test",
        "prio": "high",
        "counts": {"unread": 2},
        "devices": [{"app_id": app_id, "pushkey": key} for key in pushkeys],
    }
    if event_id is not None:
        body["event_id"] = event_id
    return body


async def test_delivers_and_answers_no_rejected(scripted: Gateway) -> None:
    response = await scripted.notify(note("k1", "k2"))
    assert response.status_code == 200
    assert response.json() == {"rejected": []}
    assert sorted(key for _, key, _ in scripted.backend().sends) == ["k1", "k2"]


@pytest.mark.parametrize(
    ("body", "errcode", "names"),
    [
        ({"notification": {"event_id": "$e"}}, "M_BAD_JSON", "notification.devices"),
        ({"notification": {"devices": []}}, "M_BAD_JSON", "notification.devices"),
        ({}, "M_BAD_JSON", "notification"),
        (
            {"notification": {"devices": [{"app_id": "app", "pushkey": 5}]}},
            "M_BAD_JSON",
            "notification.devices.0.pushkey",
        ),
        (
            {"notification": {"prio": "urgent", "devices": [{"app_id": "a", "pushkey": "k"}]}},
            "M_BAD_JSON",
            "notification.prio",
        ),
        (
            {
                "notification": {
                    "counts": {"unread": "2"},
                    "devices": [{"app_id": "a", "pushkey": "k"}],
                }
            },
            "M_BAD_JSON",
            "notification.counts.unread",
        ),
        ([1, 2], "M_BAD_JSON", ""),
    ],
)
async def test_invalid_requests_name_the_field(
    scripted: Gateway, body: Any, errcode: str, names: str
) -> None:
    response = await scripted.http.post("/_matrix/push/v1/notify", json=body)
    assert response.status_code == 400
    assert response.json()["errcode"] == errcode
    assert names in response.json()["error"]
    assert scripted.backend().sends == []


async def test_body_that_is_not_json_is_m_not_json(scripted: Gateway) -> None:
    response = await scripted.http.post("/_matrix/push/v1/notify", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_NOT_JSON"


async def test_body_nested_20000_deep_is_named_too_deep(scripted: Gateway) -> None:
    deep = b'{"notification": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    response = await scripted.http.post("/_matrix/push/v1/notify", content=deep)
    assert response.status_code == 400
    assert response.json() == {
        "errcode": "M_NOT_JSON",
        "error": "the request body is JSON nested deeper than 1024 levels",
    }
    assert scripted.backend().sends == []


async def test_body_over_max_body_is_413() -> None:
    config = push_config(max_body=1024, apps={"app": {"type": "unifiedpush"}})
    async with gateway(config, SCRIPTED) as gw:
        big = note("k") | {"room_name": "x" * 2000}
        response = await gw.notify(big)
        assert response.status_code == 413
        assert response.json()["errcode"] == "M_TOO_LARGE"

        async def chunks() -> Any:
            yield b'{"notification": {"room_name": "'
            yield b"x" * 2000
            yield b'"}}'

        streamed = await gw.http.post("/_matrix/push/v1/notify", content=chunks())
        assert streamed.status_code == 413
        assert gw.backend().sends == []


async def test_wrong_method_and_path(scripted: Gateway) -> None:
    wrong_method = await scripted.http.get("/_matrix/push/v1/notify")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["errcode"] == "M_UNRECOGNIZED"
    unknown = await scripted.http.post("/_matrix/push/v1/other", json={})
    assert unknown.status_code == 404


async def test_unknown_app_id_is_rejected(scripted: Gateway) -> None:
    response = await scripted.notify(
        note("k1")
        | {"devices": [{"app_id": "nope", "pushkey": "kx"}, {"app_id": "app", "pushkey": "k1"}]}
    )
    assert response.status_code == 200
    assert response.json() == {"rejected": ["kx"]}
    assert [key for _, key, _ in scripted.backend().sends] == ["k1"]


async def test_gone_pushkeys_are_rejected_permanent_failures_are_not(scripted: Gateway) -> None:
    backend = scripted.backend()
    backend.script = {"gone": [PushkeyRejected("410")], "bad": [PermanentPushError("400")]}
    response = await scripted.notify(note("gone", "bad", "ok"))
    assert response.status_code == 200
    assert response.json() == {"rejected": ["gone"]}
    assert sorted(key for _, key, _ in backend.sends) == ["bad", "gone", "ok"]


async def test_device_failing_after_every_attempt_answers_502(scripted: Gateway) -> None:
    backend = scripted.backend()
    backend.script = {"down": [TemporaryPushError("503")] * 3, "gone": [PushkeyRejected("404")]}
    response = await scripted.notify(note("down", "gone", "ok"))
    assert response.status_code == 502
    assert response.json()["errcode"] == "TIMKIT_UPSTREAM"
    assert response.json()["rejected"] == ["gone"]
    assert [key for _, key, _ in backend.sends].count("down") == 3

    # Synapse retries: only the device that failed is pushed again.
    backend.script["gone"] = [PushkeyRejected("404")]
    retry = await scripted.notify(note("down", "gone", "ok"))
    assert retry.status_code == 200
    assert retry.json() == {"rejected": ["gone"]}
    assert [key for _, key, _ in backend.sends].count("down") == 4
    assert [key for _, key, _ in backend.sends].count("gone") == 2
    assert [key for _, key, _ in backend.sends].count("ok") == 1


async def test_repeated_event_is_not_sent_twice(scripted: Gateway) -> None:
    first = await scripted.notify(note("k1", event_id="$dup"))
    again = await scripted.notify(note("k1", event_id="$dup"))
    other = await scripted.notify(note("k1", event_id="$other"))
    assert [first.status_code, again.status_code, other.status_code] == [200, 200, 200]
    assert again.json() == {"rejected": []}
    assert [event for event, _, _ in scripted.backend().sends] == ["$dup", "$other"]


async def test_badge_only_updates_are_never_deduplicated(scripted: Gateway) -> None:
    for _ in range(2):
        response = await scripted.notify(note("k1", event_id=None))
        assert response.status_code == 200
    assert len(scripted.backend().sends) == 2


async def test_health(scripted: Gateway) -> None:
    response = await scripted.http.get("/health")
    assert response.json() == {"status": "ok"}


async def test_metrics_count_notifications_outcomes_and_retries(scripted: Gateway) -> None:
    scripted.backend().script = {"flaky": [TemporaryPushError("503"), None]}
    await scripted.notify(note("flaky", event_id="$m1"))
    await scripted.notify(note("flaky", event_id="$m1"))
    await scripted.notify(note("x") | {"devices": [{"app_id": "other", "pushkey": "x"}]})
    text = (await scripted.http.get("/metrics")).text
    assert "timkit_push_notifications_total 3.0" in text
    assert 'timkit_push_deliveries_total{app_id="app",outcome="sent"} 1.0' in text
    assert 'timkit_push_deliveries_total{app_id="app",outcome="duplicate"} 1.0' in text
    assert 'timkit_push_deliveries_total{app_id="unknown",outcome="unknown_app"} 1.0' in text
    assert 'timkit_push_rejected_total{app_id="unknown"} 1.0' in text
    assert 'timkit_push_retries_total{app_id="app"} 1.0' in text
    assert 'timkit_push_delivery_seconds_count{app_id="app"} 2.0' in text
    assert 'timkit_push_in_flight{app_id="app"} 0.0' in text


async def test_one_log_line_per_notification_without_content(
    scripted: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    pushkey = (
        "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
    )
    body = note(pushkey, event_id="$logged") | {"content": {"body": "Befund: vertraulich"}}
    with caplog.at_level("INFO", logger="timkit.push.dispatch"):
        await scripted.notify(body)
    [line] = [r.getMessage() for r in caplog.records if r.name == "timkit.push.dispatch"]
    assert "event_id=$logged" in line
    assert "outcome=sent attempts=1" in line
    assert f"pushkey={pushkey[:8]}…" in line
    assert pushkey not in line
    assert "vertraulich" not in line
