"""Composition root of the Messenger-Proxy process."""

from __future__ import annotations

import asyncio
import signal

from timkit.proxy.config import ProxyConfig
from timkit.proxy.outbound.forward import ForwardProxy


async def serve(config: ProxyConfig) -> None:
    """Run the proxy until SIGTERM or SIGINT."""
    forward = ForwardProxy(config.forward)
    await forward.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await forward.close()
