"""Poll for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

import pytest

T = TypeVar("T")
INTERVAL = 0.05


def wait_until(check: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    """Call ``check`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(INTERVAL)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@overload
async def async_wait_until(
    check: Callable[[], Awaitable[T]], what: str, timeout: float = 60.0
) -> T: ...


@overload
async def async_wait_until(check: Callable[[], T], what: str, timeout: float = 60.0) -> T: ...


async def async_wait_until(
    check: Callable[[], Awaitable[T] | T], what: str, timeout: float = 60.0
) -> T:
    """Like :func:`wait_until`, for use inside the event loop; ``check`` may be async."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        await asyncio.sleep(INTERVAL)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
