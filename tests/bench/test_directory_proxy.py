"""``timkit bench directory-proxy`` in a tiny configuration: it runs and reports every row.

Benchmarks measure, tests do not time: nothing here asserts a figure.
"""

from __future__ import annotations

import pytest

from timkit.bench.directory import SEARCHES
from timkit.bench.directory_proxy import bench_directory_proxy

pytestmark = pytest.mark.e2e  # a real FHIR-Directory and a real FHIR-Proxy process


def test_bench_directory_proxy_reports_searches_tokens_and_list_signing() -> None:
    result = bench_directory_proxy(400, rounds=10, domains=50)

    assert set(result.direct) == set(result.proxied) == set(SEARCHES)
    assert all(latency.count == 10 for latency in result.proxied.values())
    for latency in (result.token, result.provider_token, result.tim_authenticate):
        assert latency.count == 10
    assert result.domains == 50
    assert result.regenerate_seconds > 0
    report = result.markdown()
    assert report.startswith("### `timkit bench directory-proxy` — ")
    for row in (
        "| baseline: `GET /health` |",
        "| `POST /token` (client credentials) |",
        "| `GET /ti-provider-authenticate` |",
        "| `GET /tim-authenticate` without the userinfo round trip |",
        "Federation list of 50 domains regenerated and signed twice",
    ):
        assert row in report, row
    for name in SEARCHES:
        assert f"| {name} |" in report
