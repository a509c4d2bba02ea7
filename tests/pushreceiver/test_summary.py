"""The event a push announces is found however the gateway wrapped it."""

from __future__ import annotations

from typing import Any

import pytest

from timkit.pushreceiver.summary import Summary, summarize


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"event_id": "$e", "room_id": "!r", "counts": {"unread": 2}},
            Summary("$e", "!r", {"unread": 2}),
        ),
        (
            {"event_id": "$e", "room_id": "!r", "unread": 1, "missed_calls": 0},
            Summary("$e", "!r", {"unread": 1, "missed_calls": 0}),
        ),
        (
            {"notification": {"event_id": "$e", "counts": {"unread": 4}, "devices": []}},
            Summary("$e", None, {"unread": 4}),
        ),
        (
            {"message": {"token": "t", "data": {"event_id": "$e", "room_id": "!r", "unread": "5"}}},
            Summary("$e", "!r", {"unread": "5"}),
        ),
        (
            {"aps": {"badge": 7, "content-available": 1}, "event_id": "$e", "room_id": "!r"},
            Summary("$e", "!r", {"badge": 7}),
        ),
        ({"text": "hello"}, Summary(None, None, {})),
        ({"event_id": 5}, Summary(None, None, {})),
    ],
)
def test_summarize(payload: dict[str, Any], expected: Summary) -> None:
    assert summarize(payload) == expected


def test_counts_text() -> None:
    assert Summary(None, None, {"unread": 2, "missed_calls": 0}).counts_text() == (
        "unread=2 missed_calls=0"
    )
    assert Summary(None, None, {}).counts_text() == "-"
