"""What the receiver got: an in-memory, bounded, ordered log with long-poll waiting."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Received:
    """One push as delivered to a (stand-in) device.

    Attributes:
        seq: position in the inbox, from 1, never reused.
        kind: ``webpush``, ``unifiedpush``, ``fcm`` or ``apns``.
        target: the device it was for (subscription id, endpoint token, FCM registration
            token, APNs device token).
        payload: the decrypted/parsed payload (the notification the gateway sent).
        received_at: Unix time it arrived.
        meta: protocol details worth showing (``ttl``, ``urgency``, ``apns-priority`` …).
    """

    seq: int
    kind: str
    target: str
    payload: dict[str, Any]
    received_at: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON form served by ``GET /api/pushes``."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "target": self.target,
            "payload": self.payload,
            "received_at": self.received_at,
            "meta": self.meta,
        }


class Inbox:
    """The last ``capacity`` pushes, oldest first; waiters wake on every new one.

    Args:
        capacity: pushes kept; the oldest are dropped first.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self._items: deque[Received] = deque(maxlen=capacity)
        self._seq = 0
        self._changed = asyncio.Condition()
        self._waiting = 0

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest push (0 when none arrived yet)."""
        return self._seq

    @property
    def waiting(self) -> int:
        """How many :meth:`wait` calls are parked right now (long-polls, ``tail -f``)."""
        return self._waiting

    async def record(
        self, kind: str, target: str, payload: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> Received:
        """Append a push and wake every waiter; returns the stored record."""
        async with self._changed:
            self._seq += 1
            item = Received(self._seq, kind, target, payload, time.time(), meta or {})
            self._items.append(item)
            self._changed.notify_all()
        return item

    def since(self, seq: int, *, target: str | None = None) -> list[Received]:
        """Pushes newer than ``seq``, optionally only those for ``target``."""
        return [
            item
            for item in self._items
            if item.seq > seq and (target is None or item.target == target)
        ]

    async def wait(self, seq: int, timeout: float, *, target: str | None = None) -> list[Received]:
        """Like :meth:`since`, but wait up to ``timeout`` seconds for at least one push."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            self._waiting += 1
            try:
                while not (found := self.since(seq, target=target)):
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return []
                    try:
                        await asyncio.wait_for(self._changed.wait(), remaining)
                    except TimeoutError:
                        return []
                return found
            finally:
                self._waiting -= 1
