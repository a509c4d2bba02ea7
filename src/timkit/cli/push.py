"""``timkit push tail``: watch the local push receiver from a terminal.

:func:`tail` prints one line per push the receiver got (``time kind target user event_id
room_id counts``; ``user`` is the label the device was subscribed with, e.g. by
``timkit push subscribe``), long-polling ``GET /api/pushes`` when following. It speaks HTTP
to the receiver only, so it works against any running one. (``timkit push subscribe``, which
gives a user a device there, is :func:`timkit.runtime.users.subscribe_user`.)
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from timkit.core.http import sync_client
from timkit.pushreceiver.summary import summarize

POLL_SECONDS = 30
"""How long one long-poll waits for pushes (the receiver allows up to 60)."""


def format_push(push: dict[str, Any]) -> str:
    """One push of ``GET /api/pushes`` as ``time kind target user event_id room_id counts``
    (``-`` for what the push does not tell)."""
    payload = push.get("payload")
    summary = summarize(payload if isinstance(payload, dict) else {})
    when = datetime.fromtimestamp(float(push.get("received_at", 0))).strftime("%H:%M:%S.%f")[:-3]
    return " ".join(
        [
            when,
            str(push.get("kind", "-")),
            str(push.get("target", "-")),
            _label(push),
            summary.event_id or "-",
            summary.room_id or "-",
            summary.counts_text(),
        ]
    )


def _label(push: dict[str, Any]) -> str:
    meta = push.get("meta")
    label = meta.get("label") if isinstance(meta, dict) else None
    return (
        label if isinstance(label, str) and label and not any(c.isspace() for c in label) else "-"
    )


def tail(
    receiver_url: str,
    *,
    target: str | None = None,
    follow: bool = False,
    ca_file: Path | None = None,
    out: TextIO = sys.stdout,
    limit: int | None = None,
) -> int:
    """Print the receiver's pushes, one line each; keep waiting for new ones if ``follow``.

    Args:
        receiver_url: base URL of the receiver, e.g. ``http://127.0.0.1:8429``.
        target: only pushes for this subscription/endpoint id (or FCM/APNs token).
        follow: after the pushes so far, wait for new ones until interrupted (Ctrl-C).
        ca_file: PEM CA the receiver's TLS certificate chains to; None = system trust.
        out: where the lines go.
        limit: stop after this many lines (tests, scripts); None = no limit.

    Returns:
        0 when done or interrupted, 1 when the receiver cannot be reached or answers
        with an error (said on stderr).
    """
    base = receiver_url.rstrip("/")
    query: dict[str, str | int | float] = {"target": target} if target else {}
    since, wait, printed = 0, 0, 0
    try:
        with sync_client(ca_file, timeout=POLL_SECONDS + 10) as client:
            while True:
                response = client.get(
                    base + "/api/pushes", params={**query, "since": since, "wait": wait}
                )
                response.raise_for_status()
                body = response.json()
                for push in body["pushes"]:
                    print(format_push(push), file=out, flush=True)
                    printed += 1
                    if limit is not None and printed >= limit:
                        return 0
                if not follow:
                    return 0
                since, wait = int(body["last_seq"]), POLL_SECONDS
    except KeyboardInterrupt:
        return 0
    except (httpx.HTTPError, ValueError, KeyError) as e:
        print(f"timkit push tail: {receiver_url}: {e}", file=sys.stderr)
        return 1
