"""Fault injection and attempt counting, so tests and demos can make a push service fail.

``POST /api/faults`` arms a :class:`Fault`: the next ``count`` deliveries to its target (or to
any target, ``"*"``) answer ``status`` (with ``Retry-After`` when set) and record nothing.
:class:`Attempts` remembers the status every delivery attempt got, per target, so a test can
assert that the Push-Gateway retried.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from timkit.core.config import StrictModel

ANY_TARGET = "*"
"""The fault target that matches every device."""

MAX_STATUSES = 100
"""Statuses kept per target (the count is kept in full)."""


class FaultRequest(StrictModel):
    """Body of ``POST /api/faults``.

    Attributes:
        target: a subscription or endpoint id, or ``"*"`` for every one.
        status: the HTTP status the deliveries answer (400 to 599).
        count: how many deliveries fail.
        retry_after: seconds for a ``Retry-After`` header; None = no header.
    """

    target: str = Field(min_length=1)
    status: int = Field(ge=400, le=599)
    count: int = Field(default=1, ge=1, le=10_000)
    retry_after: int | None = Field(default=None, ge=0, le=86_400)


@dataclass
class Fault:
    """An armed fault: ``remaining`` more deliveries answer ``status``."""

    status: int
    remaining: int
    retry_after: int | None = None


class Faults:
    """Armed faults by target; a target's own fault wins over the ``"*"`` one."""

    def __init__(self) -> None:
        self._armed: dict[str, Fault] = {}

    def arm(self, request: FaultRequest) -> None:
        """Arm (or replace) the fault of ``request.target``."""
        self._armed[request.target] = Fault(request.status, request.count, request.retry_after)

    def clear(self) -> int:
        """Disarm every fault; returns how many were armed."""
        cleared = len(self._armed)
        self._armed.clear()
        return cleared

    def take(self, target: str) -> Fault | None:
        """The fault the next delivery to ``target`` suffers (counted down), or None."""
        for key in (target, ANY_TARGET):
            fault = self._armed.get(key)
            if fault is None:
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._armed[key]
            return fault
        return None

    def to_json(self) -> dict[str, Any]:
        """``{target: {"status", "remaining", "retry_after"}}``."""
        return {
            target: {"status": f.status, "remaining": f.remaining, "retry_after": f.retry_after}
            for target, f in self._armed.items()
        }


@dataclass
class _Tally:
    count: int = 0
    statuses: deque[int] = field(default_factory=lambda: deque(maxlen=MAX_STATUSES))


class Attempts:
    """How often each target was pushed to, and what each attempt was answered."""

    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}

    def note(self, target: str, status: int) -> None:
        """Count one delivery attempt to ``target`` that was answered ``status``."""
        tally = self._tallies.setdefault(target, _Tally())
        tally.count += 1
        tally.statuses.append(status)

    def of(self, target: str) -> dict[str, Any]:
        """``{"target", "count", "statuses"}`` (statuses oldest first, the last 100)."""
        tally = self._tallies.get(target, _Tally())
        return {"target": target, "count": tally.count, "statuses": list(tally.statuses)}

    def to_json(self) -> dict[str, Any]:
        """Every target's :meth:`of`, by target."""
        return {target: self.of(target) for target in self._tallies}
