"""What the FCM and APNs stand-ins share: the inbox, armed faults, the attempt tally, a clock.

Both stand-ins deliver a push for a device token the same way: a fault armed for the token
(``POST /api/faults``) answers first (:meth:`StandIn.take_fault`), else the push lands in the
inbox (:meth:`StandIn.deliver`); every attempt that reaches a token is noted in
:class:`~timkit.pushreceiver.faults.Attempts`. Each stand-in answers in its own protocol's
shape (Google's JSON errors, Apple's ``{"reason"}``); that stays in :mod:`.fcm` and
:mod:`.apns`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from timkit.core.web import json_object
from timkit.pushreceiver.faults import Attempts, Fault, Faults
from timkit.pushreceiver.inbox import Inbox, Received


class StandIn:
    """The state a push-service stand-in keeps about the devices it delivers to.

    Args:
        inbox: where delivered pushes land.
        faults: armed faults by device token (shared with the receiver's API); None = none.
        attempts: delivery attempts by device token (shared with the receiver's API);
            None = kept here only.
        clock: Unix time (tests move it).
    """

    def __init__(
        self,
        inbox: Inbox,
        *,
        faults: Faults | None = None,
        attempts: Attempts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inbox = inbox
        self.faults = faults or Faults()
        self.attempts = attempts or Attempts()
        self.clock = clock

    def take_fault(self, token: str) -> Fault | None:
        """The fault armed for ``token``, used up and noted as an attempt; None when none is."""
        fault = self.faults.take(token)
        if fault is not None:
            self.attempts.note(token, fault.status)
        return fault

    def refuse(self, token: str, status: int) -> None:
        """Note that a push for ``token`` was refused with ``status`` (e.g. unregistered)."""
        self.attempts.note(token, status)

    async def deliver(
        self, kind: str, token: str, payload: dict[str, Any], meta: dict[str, Any]
    ) -> Received:
        """Put a push for ``token`` into the inbox and note the successful attempt."""
        item = await self.inbox.record(kind, token, payload, meta)
        self.attempts.note(token, 200)
        return item


def unregister_token(body: bytes) -> str | None:
    """The ``token`` of an unregister request's JSON body ``{"token": …}``; None when absent."""
    document = json_object(body)
    token = document.get("token") if document is not None else None
    return token if isinstance(token, str) and token else None
