"""Rohdatenerfassung: one raw-data record per use-case run, without personal data.

gematik's acceptance criteria ML-132446, ML-132585 … ML-132593 ("TI-M Rohdatenerfassung und
-lieferung") ask every TI-M use case (AF_10103, AF_10060, AF_10064, …) to record performance
raw data and deliver it to a configured interface. A record here holds exactly::

    {"use_case": "AF_10060", "component": "registration", "start": "2025-01-01T10:00:00.123Z",
     "duration_ms": 812.4, "result": "success", "status": 202}

and nothing else: no TelematikID, no MXID, no names, no domain. Callers pass identifiers only
(they are checked against :data:`TOKEN` so an MXID, ``user@host`` or free text cannot slip in).

Sinks (``RawDataConfig.sink``):

- ``jsonl`` (default): appends one JSON line per record to ``path``. Each line is written with
  one ``write(2)`` on an ``O_APPEND`` descriptor, so concurrent writers never interleave lines.
- ``http``: POSTs each record as one JSON object to ``url``. Recording never blocks the use
  case: records go to a bounded queue drained by a background task; a full queue drops the
  record and a failed delivery is logged, never raised.
- ``off``: records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from timkit.core.config import StrictModel
from timkit.core.errors import ConfigError, TimkitError
from timkit.core.http import async_client

log = logging.getLogger(__name__)

#: What a use case id, component name or result may look like: a short identifier, never a
#: Matrix ID (``@``/``:``), e-mail address or sentence.
TOKEN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

SUCCESS = "success"
FAILURE = "failure"


class RawDataConfig(StrictModel):
    """Where raw-data records go.

    Attributes:
        sink: ``jsonl`` (append to ``path``), ``http`` (POST to ``url``) or ``off``.
        path: JSON-lines file; when unset the component passes its own default.
        url: HTTP endpoint receiving one JSON record per POST (``sink = "http"``).
        ca_file: CA bundle trusted for an ``https`` ``url`` (system trust when unset).
        timeout: seconds per HTTP delivery.
        queue_size: records buffered for HTTP delivery before new ones are dropped.
    """

    sink: Literal["jsonl", "http", "off"] = "jsonl"
    path: Path | None = None
    url: str | None = None
    ca_file: Path | None = None
    timeout: float = Field(default=5.0, gt=0)
    queue_size: int = Field(default=1000, ge=1)


@dataclass
class Measurement:
    """The outcome of a measured run; the caller may set ``status`` or ``result`` before exit,
    or ``skip`` when the block turned out to end no run (a step of a run that goes on)."""

    status: int | None = None
    result: str = SUCCESS
    skip: bool = False

    def fail(self, error: BaseException) -> None:
        """Mark the run failed by ``error``: ``failure`` with the :class:`TimkitError`'s
        status (500 for any other exception), unless an error status was set already."""
        self.result = FAILURE
        if self.status is None or self.status < 400:
            self.status = error.status if isinstance(error, TimkitError) else 500


def _check_token(name: str, value: str) -> None:
    if not TOKEN.match(value):
        raise ValueError(f"raw-data {name} must be an identifier, got {value!r}")


class RawDataSink:
    """Records raw data to the configured sink.

    Args:
        config: the sink configuration.
        default_path: JSON-lines file used when ``config.path`` is unset.
        clock: wall clock for ``start`` (UTC), injectable for tests.
        timer: monotonic clock in seconds for durations, injectable for tests.

    Raises:
        ConfigError: ``jsonl`` without any path, or ``http`` without ``url``.
    """

    def __init__(
        self,
        config: RawDataConfig,
        *,
        default_path: Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.timer = timer
        self.path = config.path or default_path
        if config.sink == "jsonl" and self.path is None:
            raise ConfigError("set a path for the jsonl sink", path="raw_data.path")
        if config.sink == "http" and not config.url:
            raise ConfigError("set url for the http sink", path="raw_data.url")
        self.dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(config.queue_size)
        self._worker: asyncio.Task[None] | None = None

    def record(
        self,
        use_case: str,
        component: str,
        start: datetime,
        duration_ms: float,
        result: str,
        status: int | None = None,
    ) -> None:
        """Record one run of ``use_case`` in ``component``; never raises on delivery problems.

        Args:
            use_case: the use case id, e.g. ``AF_10060``.
            component: the recording component, e.g. ``registration``.
            start: when the run started (timezone-aware; written as UTC).
            duration_ms: how long it took.
            result: ``success``, ``failure`` or another short identifier.
            status: the HTTP status the run ended with, if any.

        Raises:
            ValueError: when an identifier is not one (it might carry personal data).
        """
        for name, value in (("use_case", use_case), ("component", component), ("result", result)):
            _check_token(name, value)
        when = start.astimezone(UTC).isoformat(timespec="milliseconds")
        record = {
            "use_case": use_case,
            "component": component,
            "start": when.replace("+00:00", "Z"),
            "duration_ms": round(duration_ms, 3),
            "result": result,
            "status": status,
        }
        if self.config.sink == "jsonl":
            self._append(record)
        elif self.config.sink == "http":
            self._enqueue(record)

    @contextlib.asynccontextmanager
    async def measure(self, use_case: str, component: str) -> AsyncIterator[Measurement]:
        """Measure the enclosed block and record it when it ends.

        A normal exit records ``success`` (or what the caller set on the yielded
        :class:`Measurement`; nothing when it set ``skip``); an exception records ``failure``
        with the :class:`TimkitError`'s status (500 for any other exception) and propagates
        unchanged.
        """
        _check_token("use_case", use_case)
        _check_token("component", component)
        start = self.clock()
        begin = self.timer()
        outcome = Measurement()
        try:
            yield outcome
        except BaseException as e:
            outcome.fail(e)
            raise
        finally:
            if not outcome.skip:
                duration = (self.timer() - begin) * 1000.0
                self.record(use_case, component, start, duration, outcome.result, outcome.status)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (waiting at most ``timeout`` seconds), then stop the worker."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    def _append(self, record: dict[str, Any]) -> None:
        assert self.path is not None
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            log.error("raw data: cannot append to %s: %s", self.path, e)

    def _enqueue(self, record: dict[str, Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.error("raw data: http sink needs a running event loop; record dropped")
            self.dropped += 1
            return
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._deliver(), name="rawdata-http")
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("raw data: queue full, record dropped (%d so far)", self.dropped)

    async def _deliver(self) -> None:
        assert self.config.url is not None
        async with async_client(self.config.ca_file, timeout=self.config.timeout) as client:
            while True:
                record = await self._queue.get()
                try:
                    response = await client.post(self.config.url, json=record)
                    if response.status_code >= 300:
                        log.error("raw data: %s answered %d", self.config.url, response.status_code)
                except Exception as e:  # delivery must never break the use case
                    log.error("raw data: cannot deliver to %s: %s", self.config.url, e)
                finally:
                    self._queue.task_done()
