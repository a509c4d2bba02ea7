"""Logging setup shared by every timkit process: one line per record, UTC timestamps."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "INFO", *, stream: TextIO | None = None) -> None:
    """Route the root logger to ``stream`` (default stderr) at ``level``.

    The supervisor captures each child's stderr into that component's log file, so a
    process only ever logs to a stream.
    """
    formatter = logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per health probe would drown the supervisor's log.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
