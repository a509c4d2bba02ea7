"""Composition root of the Messenger-Proxy process."""

from __future__ import annotations

from timkit.core.lifecycle import wait_for_stop
from timkit.proxy.config import ProxyConfig
from timkit.proxy.outbound.forward import ForwardProxy


async def serve(config: ProxyConfig) -> None:
    """Run the proxy until SIGTERM or SIGINT."""
    forward = ForwardProxy(config.forward)
    await forward.start()
    try:
        await wait_for_stop()
    finally:
        await forward.close()
