"""Fault injection: the next deliveries fail as asked, and every attempt is counted."""

from __future__ import annotations

import json

import pytest
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush_async  # type: ignore[import-untyped]

from tests.pushreceiver.conftest import Running, VapidKey


async def _arm(rx: Running, **fault: object) -> None:
    response = await rx.http.post(rx.url + "/api/faults", json=fault)
    assert response.status_code == 201, response.text


async def test_503_with_retry_after_for_count_deliveries_then_recorded(rx: Running) -> None:
    endpoint = rx.receiver.create_unifiedpush_endpoint()
    await _arm(rx, target=endpoint["id"], status=503, count=2, retry_after=1)
    statuses = []
    for _ in range(3):
        response = await rx.http.post(endpoint["endpoint"], content=b'{"n": 1}')
        statuses.append(response.status_code)
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
    assert statuses == [503, 503, 201]
    assert len(await rx.pushes()) == 1
    assert await rx.attempts(endpoint["id"]) == {
        "target": endpoint["id"],
        "count": 3,
        "statuses": [503, 503, 201],
    }
    assert (await rx.http.get(rx.url + "/api/faults")).json() == {"faults": {}}


async def test_a_wildcard_fault_hits_webpush_too_and_can_be_cleared(
    rx: Running, vapid: VapidKey
) -> None:
    subscription = rx.receiver.subscribe_webpush()
    await _arm(rx, target="*", status=429, count=5)
    with pytest.raises(WebPushException) as refused:
        await webpush_async(
            subscription,
            json.dumps({"event_id": "$e"}),
            vapid_private_key=Vapid(vapid.private),
            vapid_claims={"sub": "mailto:push@a.tim.test"},
        )
    assert refused.value.response is not None
    assert refused.value.response.status == 429
    assert "retry-after" not in refused.value.response.headers
    armed = (await rx.http.get(rx.url + "/api/faults")).json()["faults"]
    assert armed["*"]["remaining"] == 4
    assert (await rx.http.delete(rx.url + "/api/faults")).json() == {"cleared": 1}
    response = await webpush_async(
        subscription,
        json.dumps({"event_id": "$e"}),
        vapid_private_key=Vapid(vapid.private),
        vapid_claims={"sub": "mailto:push@a.tim.test"},
    )
    assert response.status == 201
    assert (await rx.attempts(subscription["id"]))["statuses"] == [429, 201]


async def test_a_targets_own_fault_wins_and_others_are_untouched(rx: Running) -> None:
    one = rx.receiver.create_unifiedpush_endpoint()
    two = rx.receiver.create_unifiedpush_endpoint()
    await _arm(rx, target="*", status=500)
    await _arm(rx, target=one["id"], status=410)
    assert (await rx.http.post(one["endpoint"], content=b"x")).status_code == 410
    assert (await rx.http.post(two["endpoint"], content=b"x")).status_code == 500
    assert (await rx.http.post(one["endpoint"], content=b"x")).status_code == 201
    everything = (await rx.http.get(rx.url + "/api/attempts")).json()["targets"]
    assert everything[one["id"]]["statuses"] == [410, 201]
    assert everything[two["id"]]["statuses"] == [500]


async def test_unknown_targets_count_attempts_with_their_404(rx: Running) -> None:
    assert (await rx.http.post(rx.url + "/up/ghost", content=b"x")).status_code == 404
    assert await rx.attempts("ghost") == {"target": "ghost", "count": 1, "statuses": [404]}
    assert await rx.attempts("never") == {"target": "never", "count": 0, "statuses": []}


@pytest.mark.parametrize(
    "fault",
    [
        {"target": "*", "status": 200},
        {"target": "*", "status": 503, "count": 0},
        {"target": "", "status": 503},
        {"status": 503},
        {"target": "*", "status": "503"},
        {"target": "*", "status": 503, "colour": "red"},
    ],
)
async def test_bad_faults_are_400(rx: Running, fault: dict[str, object]) -> None:
    response = await rx.http.post(rx.url + "/api/faults", json=fault)
    assert response.status_code == 400, response.text
    assert response.json()["errcode"] == "M_BAD_JSON"
