"""What a push says about the Matrix event it announces, whatever the push protocol.

Gateways wrap the notification differently: Sygnal-style WebPush sends it flat (``unread``
at the top), the Matrix→UnifiedPush gateway nests it under ``notification``, FCM under
``message.data`` (string values), APNs next to ``aps``. :func:`summarize` finds the
``event_id``, ``room_id`` and unread counts in any of them, for the page and
``timkit push tail``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

_COUNT_KEYS = ("unread", "missed_calls", "unread_count", "badge")


@dataclass(frozen=True)
class Summary:
    """The event a push announces; ``None`` where the push does not say.

    Attributes:
        event_id: the Matrix event id.
        room_id: the Matrix room id.
        counts: unread counters, e.g. ``{"unread": 2}``.
    """

    event_id: str | None
    room_id: str | None
    counts: dict[str, Any]

    def counts_text(self) -> str:
        """``unread=2 missed_calls=0``, or ``-`` when the push carries no counts."""
        return " ".join(f"{k}={v}" for k, v in self.counts.items()) or "-"


def _objects(payload: dict[str, Any], depth: int = 3) -> list[dict[str, Any]]:
    """``payload`` and the objects nested in it, breadth first, ``depth`` levels deep."""
    found: list[dict[str, Any]] = []
    queue: deque[tuple[dict[str, Any], int]] = deque([(payload, 0)])
    while queue:
        current, level = queue.popleft()
        found.append(current)
        if level < depth:
            queue.extend((v, level + 1) for v in current.values() if isinstance(v, dict))
    return found


def summarize(payload: dict[str, Any]) -> Summary:
    """The event id, room id and counts carried by ``payload``, wherever they are nested."""
    objects = _objects(payload)
    home = next((o for o in objects if "event_id" in o or "room_id" in o), payload)
    counts: dict[str, Any] = {}
    for candidate in (home.get("counts"), home, home.get("aps")):
        if isinstance(candidate, dict):
            counts.update((k, candidate[k]) for k in _COUNT_KEYS if k in candidate)
    event_id, room_id = home.get("event_id"), home.get("room_id")
    return Summary(
        event_id if isinstance(event_id, str) else None,
        room_id if isinstance(room_id, str) else None,
        counts,
    )
