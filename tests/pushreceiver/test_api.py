"""The inbox API (long-poll), the page and liveness."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.pushreceiver.conftest import Running
from tests.support.wait import async_wait_until


async def test_a_long_poll_returns_as_soon_as_a_push_arrives(rx: Running) -> None:
    endpoint = rx.receiver.create_unifiedpush_endpoint()
    other = rx.receiver.create_unifiedpush_endpoint()
    waiting = asyncio.create_task(
        rx.http.get(rx.url + "/api/pushes", params={"wait": 30, "target": endpoint["id"]})
    )
    await async_wait_until(lambda: rx.receiver.inbox.waiting, "the long-poll to park")
    assert (await rx.http.post(other["endpoint"], content=b"not for me")).status_code == 201
    assert not waiting.done()
    assert (await rx.http.post(endpoint["endpoint"], content=b'{"a": 1}')).status_code == 201
    response = await asyncio.wait_for(waiting, 5)
    body = response.json()
    assert [p["payload"] for p in body["pushes"]] == [{"a": 1}]
    assert body["last_seq"] == 2
    assert (await rx.pushes(since=body["last_seq"])) == []
    assert [p["seq"] for p in await rx.pushes(since=1)] == [2]


async def test_a_long_poll_without_pushes_answers_empty_after_the_wait(rx: Running) -> None:
    response = await rx.http.get(rx.url + "/api/pushes", params={"wait": 0.05, "since": 7})
    assert response.json() == {"pushes": [], "last_seq": 0}


@pytest.mark.parametrize(
    "params", [{"wait": 61}, {"wait": -1}, {"wait": "soon"}, {"since": "-1"}, {"since": "x"}]
)
async def test_bad_queries_are_400(rx: Running, params: dict[str, str | int]) -> None:
    response = await rx.http.get(rx.url + "/api/pushes", params=params)
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_PARAM"


async def test_unknown_push_and_route_are_json_404(rx: Running) -> None:
    for path in ("/api/pushes/5", "/api/pushes/x"):
        response = await rx.http.get(rx.url + path)
        assert response.status_code == 404
        assert response.json()["errcode"] == "M_NOT_FOUND"
    unrouted = await rx.http.get(rx.url + "/nothing")  # as on every Matrix JSON edge
    assert unrouted.status_code == 404
    assert unrouted.json()["errcode"] == "M_UNRECOGNIZED"


async def test_the_page_lists_pushes_escaped_and_refreshes(rx: Running) -> None:
    empty = await rx.http.get(rx.url + "/")
    assert "No pushes yet." in empty.text
    endpoint = rx.receiver.create_unifiedpush_endpoint()
    body = b'{"event_id": "$<script>x</script>", "room_id": "!r:a", "counts": {"unread": 3}}'
    assert (await rx.http.post(endpoint["endpoint"], content=body)).status_code == 201
    page = await rx.http.get(rx.url + "/")
    assert page.status_code == 200
    assert page.headers["refresh"] == "3"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    assert "$&lt;script&gt;x&lt;/script&gt;" in page.text
    assert "!r:a" in page.text
    assert "unread=3" in page.text
    assert endpoint["id"] in page.text


async def test_health(rx: Running) -> None:
    response = await rx.http.get(rx.url + "/health")
    assert response.json() == {"status": "ok"}


# -- UnifiedPush endpoints (SERV_1.2.0): 201 for 1 to 4096 bytes, 413 beyond, 404 when gone


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
