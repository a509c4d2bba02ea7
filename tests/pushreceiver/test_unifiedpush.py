"""UnifiedPush endpoints (SERV_1.2.0): 201 for 1 to 4096 bytes, 413 beyond, 404 when gone."""

from __future__ import annotations

import json

from tests.pushreceiver.conftest import Running


async def _endpoint(rx: Running) -> dict[str, str]:
    response = await rx.http.post(rx.url + "/api/unifiedpush/endpoints")
    assert response.status_code == 201, response.text
    endpoint: dict[str, str] = response.json()
    assert endpoint["endpoint"] == f"{rx.url}/up/{endpoint['id']}"
    return endpoint


async def test_a_push_is_recorded_with_its_json(rx: Running) -> None:
    endpoint = await _endpoint(rx)
    notification = {"notification": {"event_id": "$e:b.tim.test", "counts": {"unread": 1}}}
    response = await rx.http.post(endpoint["endpoint"], content=json.dumps(notification))
    assert response.status_code == 201
    [push] = await rx.pushes(target=endpoint["id"])
    assert push["kind"] == "unifiedpush"
    assert push["payload"] == notification
    assert response.headers["location"] == f"{rx.url}/api/pushes/{push['seq']}"


async def test_sizes_are_bounded(rx: Running) -> None:
    endpoint = await _endpoint(rx)
    assert (await rx.http.post(endpoint["endpoint"], content=b"x" * 4096)).status_code == 201
    too_large = await rx.http.post(endpoint["endpoint"], content=b"x" * 4097)
    assert too_large.status_code == 413
    assert too_large.json()["errcode"] == "M_TOO_LARGE"
    assert (await rx.http.post(endpoint["endpoint"], content=b"")).status_code == 400
    [push] = await rx.pushes()
    assert push["payload"] == {"text": "x" * 4096}


async def test_deleted_and_unknown_endpoints_are_404(rx: Running) -> None:
    endpoint = await _endpoint(rx)
    url = f"{rx.url}/api/unifiedpush/endpoints/{endpoint['id']}"
    assert (await rx.http.delete(url)).status_code == 200
    assert (await rx.http.delete(url)).status_code == 404
    assert (await rx.http.post(endpoint["endpoint"], content=b"{}")).status_code == 404
    assert (await rx.http.post(f"{rx.url}/up/unknown", content=b"{}")).status_code == 404
    assert await rx.pushes() == []


async def test_the_receiver_object_hands_out_endpoints_too(rx: Running) -> None:
    endpoint = rx.receiver.create_unifiedpush_endpoint()
    assert (await rx.http.post(endpoint["endpoint"], content=b"hi")).status_code == 201
    assert [p.target for p in rx.receiver.inbox.since(0)] == [endpoint["id"]]
