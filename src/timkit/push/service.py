"""Composition root of the Push-Gateway process.

Builds, in order: the metrics, one backend per ``[apps.<app_id>]`` (through the explicit
:data:`~timkit.push.backends.BACKENDS` registry), the dispatcher and the HTTP listener
(HTTPS when ``tls_cert`` and ``tls_key`` are set). Everything closes in reverse order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from timkit.core.errors import ConfigError
from timkit.core.lifecycle import wait_for_stop
from timkit.core.tls import optional_server_ssl_context
from timkit.core.web import running_app
from timkit.push.api import create_app
from timkit.push.backends import BACKENDS
from timkit.push.backends.base import Backend
from timkit.push.config import PushConfig
from timkit.push.dispatch import App, Dispatcher
from timkit.push.metrics import PushMetrics
from timkit.push.ssrf import parse_networks, parse_origins

log = logging.getLogger(__name__)


@dataclass
class RunningGateway:
    """A started gateway (for tests, benchmarks and ``timkit up``).

    Attributes:
        config: what it runs with.
        dispatcher: delivers the notifications.
        metrics: its metrics.
        port: the bound port (useful with ``port = 0``).
        url: base URL of the listener.
    """

    config: PushConfig
    dispatcher: Dispatcher
    metrics: PushMetrics
    port: int
    url: str


def check_config(config: PushConfig, registry: Mapping[str, type[Backend]]) -> None:
    """What the schema cannot check: TLS pairs, networks, origins, every app type's backend.

    Raises:
        ConfigError: naming the key.
    """
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("set both tls_cert and tls_key, or neither", path="tls_cert")
    parse_networks(config.outbound.allowed_networks)
    parse_origins(config.outbound.allowed_origins)
    for app_id, app in config.apps.items():
        if app.type not in registry:
            raise ConfigError(
                f"app {app_id!r}: no {app.type} backend in this build", path=f"apps.{app_id}.type"
            )


@contextlib.asynccontextmanager
async def open_apps(
    config: PushConfig, registry: Mapping[str, type[Backend]] = BACKENDS
) -> AsyncIterator[dict[str, App]]:
    """Each app's backend, created inside the context and closed on leaving.

    Raises:
        ConfigError: an app's type has no backend, or a backend cannot load its keys.
    """
    check_config(config, registry)
    async with contextlib.AsyncExitStack() as stack:
        apps: dict[str, App] = {}
        for app_id, app in config.apps.items():
            backend = await registry[app.type].create(app_id, app, config.outbound)
            stack.push_async_callback(backend.close)
            apps[app_id] = App(backend, app.delivery)
        yield apps


@contextlib.asynccontextmanager
async def running(
    config: PushConfig, *, registry: Mapping[str, type[Backend]] = BACKENDS
) -> AsyncIterator[RunningGateway]:
    """The gateway serving inside the context; stopped and its backends closed on leaving.

    Args:
        config: the gateway's config.
        registry: the backend class of each config ``type`` (tests substitute fakes).

    Raises:
        ConfigError: see :func:`open_apps`.
        OSError: the port cannot be bound.
    """
    check_config(config, registry)
    metrics = PushMetrics()
    ssl_context = optional_server_ssl_context(config.tls_cert, config.tls_key)
    async with open_apps(config, registry) as apps:
        dispatcher = Dispatcher(apps, metrics, dedup_size=config.dedup_size)
        app = create_app(dispatcher, metrics, max_body=config.max_body)
        async with running_app(app, config.bind, config.port, ssl_context) as runner:
            port = int(runner.addresses[0][1])
            scheme = "https" if ssl_context is not None else "http"
            host = f"[{config.bind}]" if ":" in config.bind else config.bind
            yield RunningGateway(config, dispatcher, metrics, port, f"{scheme}://{host}:{port}")


async def serve(config: PushConfig) -> None:
    """Run the gateway until SIGTERM or SIGINT."""
    async with running(config) as gateway:
        log.info(
            "Push-Gateway on %s%s, apps: %s",
            gateway.url,
            "/_matrix/push/v1/notify",
            ", ".join(f"{a} ({c.type})" for a, c in config.apps.items()) or "none",
        )
        await wait_for_stop()
