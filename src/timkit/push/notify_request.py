"""The Push Gateway API v1 request model (``POST /_matrix/push/v1/notify``).

Field names and types follow ``matrix-org/matrix-spec: data/api/push-gateway/
push_notifier.yaml``. Synapse's ``event_id_only`` pushers send only ``event_id``,
``room_id``, ``prio``, ``counts`` and ``devices``; everything else is optional.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    # Unknown fields are allowed (the API grows; homeservers add fields) but not kept.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Counts(_Model):
    """``counts``: the badge numbers of the user."""

    unread: int | None = Field(default=None, ge=0)
    missed_calls: int | None = Field(default=None, ge=0)


class Device(_Model):
    """One pusher of the user: where and how to deliver.

    Attributes:
        app_id: selects the backend (``[apps.<app_id>]`` in the gateway's config).
        pushkey: the device's address at the push service (WebPush: the subscription's
            ``p256dh`` key, with ``data.endpoint`` and ``data.auth``; UnifiedPush: the
            endpoint URL; FCM: the registration token; APNs: the hex device token).
        pushkey_ts: when the pushkey was last updated (seconds).
        data: the pusher's ``data`` minus ``url`` and ``format``.
        tweaks: the push rule's tweaks (``sound``, ``highlight`` …).
    """

    app_id: str = Field(min_length=1, max_length=64)
    pushkey: str = Field(min_length=1, max_length=512)
    pushkey_ts: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    tweaks: dict[str, Any] = Field(default_factory=dict)


class Notification(_Model):
    """``notification``: one event (or a badge update) for one user's devices."""

    event_id: str | None = None
    room_id: str | None = None
    type: str | None = None
    sender: str | None = None
    sender_display_name: str | None = None
    room_name: str | None = None
    room_alias: str | None = None
    user_is_target: bool | None = None
    prio: Literal["high", "low"] = "high"
    content: dict[str, Any] | None = None
    counts: Counts = Field(default_factory=Counts)
    devices: list[Device] = Field(min_length=1, max_length=100)


class NotifyRequest(_Model):
    """The request body: ``{"notification": {...}}``."""

    notification: Notification
