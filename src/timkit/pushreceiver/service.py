"""Composition root of the push receiver: one HTTP(S) app, plus the APNs server when set.

The app serves the WebPush and UnifiedPush endpoints, the page and the JSON API (and the
FCM HTTP v1 stand-in when ``config.fcm`` is set); the APNs stand-in is HTTP/2 on its own
TLS port (``config.apns``). All of them record into one :class:`Inbox`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from timkit.core.errors import ConfigError
from timkit.core.lifecycle import wait_for_stop
from timkit.core.tls import optional_server_ssl_context
from timkit.core.web import running_app
from timkit.pushreceiver.api import ReceiverState, create_app
from timkit.pushreceiver.apns import running_apns
from timkit.pushreceiver.config import PushReceiverConfig
from timkit.pushreceiver.devices import Devices
from timkit.pushreceiver.faults import Attempts, Faults
from timkit.pushreceiver.fcm import fcm_routes
from timkit.pushreceiver.inbox import Inbox

log = logging.getLogger(__name__)

_WILDCARDS = {"", "0.0.0.0", "::"}


class Receiver:
    """A running push receiver, as :func:`running` yields it.

    Args:
        state: what the handlers work on.
        port: the bound HTTP(S) port (the real one when the config said 0).
        apns_port: the bound APNs port; None when APNs is off.
    """

    def __init__(self, state: ReceiverState, port: int, apns_port: int | None = None) -> None:
        self._state = state
        self.port = port
        self.apns_port = apns_port

    @property
    def inbox(self) -> Inbox:
        """Where every push lands."""
        return self._state.inbox

    @property
    def devices(self) -> Devices:
        """The WebPush subscriptions and UnifiedPush endpoints."""
        return self._state.devices

    @property
    def faults(self) -> Faults:
        """Armed fault injections (as ``POST /api/faults`` arms them)."""
        return self._state.faults

    @property
    def attempts(self) -> Attempts:
        """Delivery attempts per target (as ``GET /api/attempts`` shows them)."""
        return self._state.attempts

    @property
    def public_url(self) -> str:
        """Base URL of the endpoints, the page and the API (no trailing slash)."""
        return self._state.devices.public_url

    def subscribe_webpush(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A new WebPush subscription: ``{"id", "endpoint", "keys": {"p256dh", "auth"}}``.

        Args:
            application_server_key: base64url VAPID public key to pin; None = any key.
        """
        return self._state.devices.subscribe_webpush(application_server_key)

    def create_unifiedpush_endpoint(self) -> dict[str, Any]:
        """A new UnifiedPush endpoint: ``{"id", "endpoint"}``."""
        return self._state.devices.create_unifiedpush_endpoint()


def default_public_url(bind: str, port: int, tls: bool) -> str:
    """``http(s)://<bind>:<port>``; a wildcard ``bind`` is reached over loopback."""
    host = "127.0.0.1" if bind in _WILDCARDS else bind
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


@contextlib.asynccontextmanager
async def running(config: PushReceiverConfig) -> AsyncIterator[Receiver]:
    """Serve the receiver on the configured ports; stop everything afterwards.

    Raises:
        ConfigError: when ``apns`` is set without ``tls_cert``/``tls_key``.
        OSError: when a port cannot be bound.
    """
    tls = optional_server_ssl_context(config.tls_cert, config.tls_key)
    state = ReceiverState(Inbox(config.max_pushes), Devices(), config.max_payload)
    app = create_app(state)
    if config.fcm is not None:  # the FCM HTTP v1 stand-in: /token, /v1/projects/…:send
        app.add_routes(
            fcm_routes(config.fcm, state.inbox, faults=state.faults, attempts=state.attempts)
        )
    async with contextlib.AsyncExitStack() as stack:
        runner = await stack.enter_async_context(running_app(app, config.bind, config.port, tls))
        port = _bound_port(runner)
        state.devices.public_url = (
            config.public_url or default_public_url(config.bind, port, tls is not None)
        ).rstrip("/")
        apns_port = None
        if config.apns is not None:  # the APNs stand-in: HTTP/2 over TLS on its own port
            if config.tls_cert is None or config.tls_key is None:
                raise ConfigError("the APNs stand-in needs tls_cert and tls_key", path="apns")
            apns_port = await stack.enter_async_context(
                running_apns(
                    config.apns,
                    state.inbox,
                    config.tls_cert,
                    config.tls_key,
                    config.bind,
                    faults=state.faults,
                    attempts=state.attempts,
                )
            )
        yield Receiver(state, port, apns_port)


async def serve(config: PushReceiverConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    async with running(config) as receiver:
        extra = f", APNs on port {receiver.apns_port}" if receiver.apns_port is not None else ""
        log.info("push receiver: page and endpoints on %s/%s", receiver.public_url, extra)
        await wait_for_stop()
