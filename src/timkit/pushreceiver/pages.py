"""Server-rendered HTML of the push receiver: recent pushes, newest first.

Everything a push brings is escaped (Jinja2 autoescaping). The page reloads itself every
:data:`REFRESH_SECONDS` (``Refresh`` header), so a newcomer sees pushes arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from timkit.core.templates import environment
from timkit.pushreceiver.inbox import Received
from timkit.pushreceiver.summary import summarize

TEMPLATES = Path(__file__).parent / "templates"
REFRESH_SECONDS = 3
SHOWN = 100
"""Pushes listed on the page (the newest)."""

_ENV = environment(TEMPLATES)


def _row(item: Received) -> dict[str, Any]:
    summary = summarize(item.payload)
    return {
        "seq": item.seq,
        "time": datetime.fromtimestamp(item.received_at).strftime("%Y-%m-%d %H:%M:%S"),
        "kind": item.kind,
        "target": item.target,
        "event_id": summary.event_id or "-",
        "room_id": summary.room_id or "-",
        "counts": summary.counts_text(),
        "payload": orjson.dumps(item.payload, option=orjson.OPT_INDENT_2).decode(),
    }


def list_page(pushes: Iterable[Received], devices: dict[str, int], public_url: str) -> str:
    """The newest :data:`SHOWN` pushes, newest first, and how many devices exist."""
    rows = [_row(item) for item in reversed(list(pushes))][:SHOWN]
    return _ENV.get_template("list.html").render(
        rows=rows, devices=devices, public_url=public_url, refresh=REFRESH_SECONDS
    )


def error_page(status: int, message: str) -> str:
    """An error page."""
    return _ENV.get_template("error.html").render(status=status, message=message)
