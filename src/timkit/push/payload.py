"""What the gateway forwards of a notification: the fields it carried, and no more.

Synapse's ``event_id_only`` pushers (the timkit client's) send only ``event_id``,
``room_id``, ``prio`` and ``counts``; the client fetches and decrypts the event itself.
Whatever else a homeserver sent (sender, room name, ``content`` …) is forwarded as is, so
message content reaches a device only when the homeserver put it in the notification.

Push services cap the body (WebPush and UnifiedPush at 4096 bytes). A notification that
does not fit loses ``content`` first, then the display fields; the ids always remain.
"""

from __future__ import annotations

from typing import Any

import orjson

from timkit.push.notify_request import Notification

DROPPABLE = (
    ("content",),
    ("sender_display_name", "room_name", "room_alias", "user_is_target"),
)
"""Dropped in this order, group by group, until the payload fits."""


def notification_fields(notification: Notification) -> dict[str, Any]:
    """The notification's fields that are present, without ``devices``.

    ``counts`` is kept only when it has a number; ``prio`` is always there.
    """
    fields = notification.model_dump(exclude={"devices"}, exclude_none=True)
    if not fields.get("counts"):
        fields.pop("counts", None)
    return fields


def encode_within(fields: dict[str, Any], limit: int, *, wrap: str | None = None) -> bytes:
    """``fields`` as JSON of at most ``limit`` bytes, dropping :data:`DROPPABLE` as needed.

    Args:
        fields: from :func:`notification_fields`.
        limit: the largest body the push service takes.
        wrap: put the fields under this key (``{"notification": {...}}``); None = flat.

    Raises:
        ValueError: the ids alone are larger than ``limit``.
    """
    current = dict(fields)
    for group in (*DROPPABLE, None):
        body = orjson.dumps({wrap: current} if wrap else current)
        if len(body) <= limit:
            return body
        if group is None:
            break
        for name in group:
            current.pop(name, None)
    raise ValueError(f"notification is {len(body)} bytes even without content, over {limit}")
