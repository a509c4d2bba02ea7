"""Prometheus metrics: one registry per component process, served at ``GET /metrics``.

Components declare their metrics on a :class:`prometheus_client.CollectorRegistry` of their
own (not the library's global one, so tests can run several components in one process) and
mount :func:`metrics_handler` on a route.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from timkit.core.web import Handler


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """An aiohttp handler answering the text exposition format of ``registry``."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return metrics
