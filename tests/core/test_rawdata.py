"""Rohdatenerfassung: records hold no personal data, lines are atomic, HTTP never blocks."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.wait import async_wait_until
from timkit.core.config import parse_config
from timkit.core.errors import ConfigError, TimkitError
from timkit.core.process import free_port
from timkit.core.rawdata import RawDataConfig, RawDataSink

START = datetime(2025, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_jsonl_record_has_exactly_the_raw_data_fields(tmp_path: Path) -> None:
    sink = RawDataSink(RawDataConfig(path=tmp_path / "raw.jsonl"))
    sink.record("AF_10060", "registration", START, 812.4567, "success", 202)
    assert _lines(tmp_path / "raw.jsonl") == [
        {
            "use_case": "AF_10060",
            "component": "registration",
            "start": "2025-03-01T10:00:00.123Z",
            "duration_ms": 812.457,
            "result": "success",
            "status": 202,
        }
    ]


@pytest.mark.parametrize(
    "use_case", ["@alice:praxis.tim.test", "alice@example.org", "Dr. Alice Sonnenschein"]
)
def test_personal_data_cannot_be_recorded(tmp_path: Path, use_case: str) -> None:
    sink = RawDataSink(RawDataConfig(path=tmp_path / "raw.jsonl"))
    with pytest.raises(ValueError, match="identifier"):
        sink.record(use_case, "registration", START, 1.0, "success")
    assert not (tmp_path / "raw.jsonl").exists()


async def test_measure_records_success_failure_and_status(tmp_path: Path) -> None:
    ticks = iter([10.0, 10.25, 20.0, 20.5, 30.0, 30.125])
    sink = RawDataSink(
        RawDataConfig(path=tmp_path / "raw.jsonl"), clock=lambda: START, timer=lambda: next(ticks)
    )
    async with sink.measure("AF_10060", "registration") as run:
        run.status = 202
    with pytest.raises(TimkitError):
        async with sink.measure("AF_10060", "registration"):
            raise TimkitError(409, "M_USER_IN_USE", "taken")
    with pytest.raises(RuntimeError):
        async with sink.measure("AF_10064", "registration"):
            raise RuntimeError("boom")
    records = _lines(tmp_path / "raw.jsonl")
    assert [(r["use_case"], r["result"], r["status"], r["duration_ms"]) for r in records] == [
        ("AF_10060", "success", 202, 250.0),
        ("AF_10060", "failure", 409, 500.0),
        ("AF_10064", "failure", 500, 125.0),
    ]


async def test_a_skipped_measurement_records_nothing(tmp_path: Path) -> None:
    """A step of a run that goes on (an authentication step's 401) ends no run."""
    sink = RawDataSink(RawDataConfig(path=tmp_path / "raw.jsonl"))
    async with sink.measure("AF_10057", "proxy") as run:
        run.status, run.skip = 401, True
    assert not (tmp_path / "raw.jsonl").exists()


def _write_many(path: str, worker: int) -> None:
    sink = RawDataSink(RawDataConfig(path=Path(path)))
    for _ in range(200):
        sink.record("AF_10060", f"component-{worker}" + "x" * 40, START, 1.0, "success", 200)


def test_concurrent_appends_are_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(str(path), n)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    records = _lines(path)  # every line parses: none interleaved
    assert len(records) == 800


def test_off_records_nothing_and_config_errors_name_the_key(tmp_path: Path) -> None:
    RawDataSink(RawDataConfig(sink="off")).record("AF_10060", "rd", START, 1.0, "success")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match=r"raw_data\.path"):
        RawDataSink(RawDataConfig())
    with pytest.raises(ConfigError, match=r"raw_data\.url"):
        RawDataSink(RawDataConfig(sink="http"))
    with pytest.raises(ConfigError, match="sink"):
        parse_config(RawDataConfig, {"sink": "syslog"})


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[dict[str, Any]], asyncio.Event]]:
    """An HTTP endpoint collecting records; it holds each request until ``release`` is set."""
    received: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def collect(request: web.Request) -> web.Response:
        await release.wait()
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/raw", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/raw", received, release
    release.set()
    await runner.cleanup()


async def test_http_sink_delivers_in_background_without_blocking(
    collector: tuple[str, list[dict[str, Any]], asyncio.Event],
) -> None:
    url, received, release = collector
    sink = RawDataSink(RawDataConfig(sink="http", url=url))
    async with sink.measure("AF_10060", "registration"):
        pass  # returns although the endpoint has not answered yet
    sink.record("AF_10103", "registration", START, 3.0, "success", 200)
    assert received == []
    release.set()
    await async_wait_until(lambda: len(received) == 2, "both records delivered")
    assert [r["use_case"] for r in received] == ["AF_10060", "AF_10103"]
    await sink.aclose()


async def test_http_sink_drops_when_full_and_survives_a_dead_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/raw"  # nothing listens
    sink = RawDataSink(RawDataConfig(sink="http", url=url, queue_size=2, timeout=1.0))
    for _ in range(5):
        sink.record("AF_10060", "registration", START, 1.0, "success")
    assert sink.dropped >= 2
    await async_wait_until(lambda: "cannot deliver" in caplog.text, "the failed delivery is logged")
    await sink.aclose()
