"""1:1 rooms the proxy has seen created (table ``direct_rooms``, migration 1).

The inbound proxy records a room created as a direct chat together with its two members and
later refuses an invite of a third user into it. Recording is idempotent and the first
record wins: a room's pair never changes once stored.
"""

from __future__ import annotations

from timkit.core.db import Cursor


def record(cur: Cursor, room_id: str, user_a: str, user_b: str, now_s: int) -> tuple[str, str]:
    """Store ``room_id`` as a 1:1 room of ``user_a`` and ``user_b`` unless it is stored already.

    Returns:
        the pair held for the room afterwards (the earlier one when the room was known).
    """
    cur.execute(
        "INSERT INTO direct_rooms (room_id, user_a, user_b, created) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (room_id) DO NOTHING",
        (room_id, user_a, user_b, now_s),
    )
    pair = get(cur, room_id)
    if pair is None:  # pragma: no cover - the row was just written or already there
        raise RuntimeError(f"direct room {room_id} vanished while being recorded")
    return pair


def get(cur: Cursor, room_id: str) -> tuple[str, str] | None:
    """The two members of the 1:1 room ``room_id``, or None when it is no known 1:1 room."""
    row = cur.execute(
        "SELECT user_a, user_b FROM direct_rooms WHERE room_id = ?", (room_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1])


def forget(cur: Cursor, room_id: str) -> bool:
    """Drop the record of ``room_id``; False when there was none."""
    cur.execute("DELETE FROM direct_rooms WHERE room_id = ?", (room_id,))
    return cur.rowcount == 1
