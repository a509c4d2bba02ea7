"""``timkit bench directory`` in a tiny configuration: it runs and reports every row.

Benchmarks measure, tests do not time: nothing here asserts a figure.
"""

from __future__ import annotations

import pytest

from timkit.bench.directory import SEARCHES, bench_directory

pytestmark = pytest.mark.e2e  # a real FHIR-Directory process


def test_bench_directory_reports_load_reads_searches_and_baseline() -> None:
    result = bench_directory(400, seconds=0.2, rounds=10)

    assert result.resources == 400
    assert result.read.count == 20
    assert set(result.searches) == set(result.hits) == set(SEARCHES)
    assert all(latency.count == 10 for latency in result.searches.values())
    assert result.searches_per_second > 0
    assert result.baseline_health_per_second > 0
    assert result.size_bytes > 0
    report = result.markdown()
    assert report.startswith("### `timkit bench directory` — ")
    for row in ("| resources loaded | 400 |", "| read by id, p50 / p99 |", "| baseline: `GET"):
        assert row in report, row
    for name in SEARCHES:
        assert f"| {name}: p50 / p99 ({result.hits[name]} hits) |" in report
