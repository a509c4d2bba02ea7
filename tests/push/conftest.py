"""Push-Gateway fixtures: the gateway in-process on a free port, with fakes behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.push.fakes import FakePushService, ScriptedBackend
from timkit.core.config import parse_config
from timkit.push.backends.base import Backend
from timkit.push.config import PushConfig
from timkit.push.service import RunningGateway, running

FAST = {"timeout": 2.0, "max_attempts": 3, "backoff": 0.01, "max_backoff": 0.05}
"""Delivery settings that keep retries quick."""

LOOPBACK = {"allowed_networks": ["127.0.0.0/8", "::1/128"]}

SCRIPTED: dict[str, type[Backend]] = {"unifiedpush": ScriptedBackend}
"""A registry whose ``unifiedpush`` apps are :class:`ScriptedBackend`\\s."""


def push_config(**values: Any) -> PushConfig:
    """A gateway config on a free port, validated like a TOML file."""
    return parse_config(PushConfig, {"port": 0, **values})


@dataclass
class Gateway:
    """A running gateway and a client for it."""

    running: RunningGateway
    http: httpx.AsyncClient

    def backend(self, app_id: str = "app") -> Any:
        return self.running.dispatcher.apps[app_id].backend

    async def notify(self, notification: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/_matrix/push/v1/notify", json={"notification": notification})


@asynccontextmanager
async def gateway(
    config: PushConfig, registry: dict[str, type[Backend]] | None = None
) -> AsyncIterator[Gateway]:
    """``config``'s gateway serving inside the context."""
    kwargs = {"registry": registry} if registry is not None else {}
    async with (
        running(config, **kwargs) as gw,
        httpx.AsyncClient(base_url=gw.url, timeout=10) as http,
    ):
        yield Gateway(gw, http)


@pytest.fixture
async def scripted() -> AsyncIterator[Gateway]:
    """A gateway with one scripted app ``app`` (quick retries) and dedup of 100."""
    config = push_config(dedup_size=100, apps={"app": {"type": "unifiedpush", "delivery": FAST}})
    async with gateway(config, SCRIPTED) as gw:
        yield gw


@pytest.fixture
async def push_service() -> AsyncIterator[FakePushService]:
    """A fake push service on a free loopback port."""
    async with FakePushService().running() as service:
        yield service
