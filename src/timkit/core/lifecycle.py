"""How a timkit service process starts and stops.

``python -m timkit.<component> --config file.toml`` is the same for every long-running
component: parse ``--config``, load the typed config (exit 2 naming the key when invalid),
set up logging, serve until SIGTERM or SIGINT::

    def main(argv=None) -> int:
        return run_service("timkit-proxy", __doc__, ProxyConfig, serve, argv)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from timkit.core.config import StrictModel, load_toml
from timkit.core.errors import ConfigError
from timkit.core.logging import setup_logging

C = TypeVar("C", bound=StrictModel)


def run_service(
    prog: str,
    description: str | None,
    model: type[C],
    serve: Callable[[C], Coroutine[Any, Any, None]],
    argv: list[str] | None = None,
) -> int:
    """Parse ``--config``, load ``model`` from it and run ``serve`` until stopped.

    Returns 2, naming the key on stderr, for an invalid config, whether loading finds it or
    ``serve`` does while starting (e.g. a secret file the config names is missing).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", type=Path, help="TOML config (defaults apply without)")
    args = parser.parse_args(argv)
    try:
        config = load_toml(model, args.config)
        setup_logging(str(getattr(config, "log_level", "INFO")))
        asyncio.run(serve(config))
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0


async def wait_for_stop() -> None:
    """Return when the process receives SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; return whether it was set.

    For background loops that sleep until kicked. Unlike ``asyncio.wait_for`` on Python
    3.11, a cancellation arriving as the timeout expires is never swallowed, so the loop's
    task always stops when cancelled.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()
