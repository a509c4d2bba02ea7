"""``timkit push tail`` against a running receiver."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from tests.pushreceiver.conftest import Running
from tests.support.wait import async_wait_until
from timkit.cli.push import format_push, tail


async def test_tail_prints_one_line_per_push(rx: Running) -> None:
    one = rx.receiver.create_unifiedpush_endpoint()
    two = rx.receiver.create_unifiedpush_endpoint()
    first = {"event_id": "$1:a.tim.test", "room_id": "!r:a.tim.test", "counts": {"unread": 1}}
    await rx.http.post(one["endpoint"], content=json.dumps(first))
    await rx.http.post(two["endpoint"], content=b"hello")
    out = io.StringIO()
    assert (
        await asyncio.to_thread(tail, rx.url, target=None, follow=False, ca_file=None, out=out) == 0
    )
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[1:] == [
        "unifiedpush",
        one["id"],
        "-",
        "$1:a.tim.test",
        "!r:a.tim.test",
        "unread=1",
    ]
    assert lines[1].split()[1:] == ["unifiedpush", two["id"], "-", "-", "-", "-"]
    only = io.StringIO()
    await asyncio.to_thread(tail, rx.url, target=two["id"], follow=False, ca_file=None, out=only)
    assert len(only.getvalue().splitlines()) == 1


async def test_tail_follows_until_the_limit(rx: Running) -> None:
    endpoint = rx.receiver.create_unifiedpush_endpoint()
    await rx.http.post(endpoint["endpoint"], content=b'{"event_id": "$old"}')
    out = io.StringIO()
    following = asyncio.create_task(
        asyncio.to_thread(
            tail, rx.url, target=endpoint["id"], follow=True, ca_file=None, out=out, limit=2
        )
    )
    # tail printed the old push and long-polls now
    await async_wait_until(lambda: rx.receiver.inbox.waiting, "tail to long-poll")
    await rx.http.post(endpoint["endpoint"], content=b'{"event_id": "$new"}')
    assert await asyncio.wait_for(following, 10) == 0
    assert [line.split()[4] for line in out.getvalue().splitlines()] == ["$old", "$new"]


def test_tail_of_a_missing_receiver_fails(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert tail("http://127.0.0.1:9", target=None, follow=False, ca_file=None, out=out) == 1
    assert "timkit push tail: http://127.0.0.1:9" in capsys.readouterr().err


def test_format_push_of_an_fcm_record() -> None:
    push = {
        "kind": "fcm",
        "target": "regtoken",
        "received_at": 0,
        "payload": {"message": {"data": {"event_id": "$e", "room_id": "!r", "unread": "2"}}},
    }
    assert format_push(push).split()[1:] == ["fcm", "regtoken", "-", "$e", "!r", "unread=2"]


def test_tail_names_the_user_a_device_was_subscribed_for() -> None:
    push = {
        "kind": "webpush",
        "target": "sub1",
        "received_at": 0,
        "payload": {"event_id": "$e", "room_id": "!r"},
        "meta": {"label": "@a1:praxis.tim.test", "ttl": 60},
    }
    assert format_push(push).split()[1:] == [
        "webpush",
        "sub1",
        "@a1:praxis.tim.test",
        "$e",
        "!r",
        "-",
    ]
    spaced = {**push, "meta": {"label": "Dr. Who"}}
    assert format_push(spaced).split()[3] == "-"
