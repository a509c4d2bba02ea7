"""``timkit bench proxy`` in a tiny configuration: it runs and reports every row.

Benchmarks measure, tests do not time: nothing here asserts a goal is met. It boots five
Synapses, four proxies and a TCP relay.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from timkit.bench.proxy import (
    DIRECT,
    ENDPOINTS,
    FEDERATED,
    PROXIED,
    PROXY,
    PROXY_TLS,
    TARGETS,
    VERSIONS,
    bench_proxy,
)


def test_bench_proxy_reports_every_measurement(tmp_path: Path) -> None:
    result = bench_proxy(gets=5, puts=3, clients=2, seconds=0.3, messages=2, keep=tmp_path)

    for endpoint in ENDPOINTS:
        assert set(result.latency[endpoint]) == set(TARGETS)
        expected = 5 if endpoint == VERSIONS else 3
        assert [lat.count for lat in result.latency[endpoint].values()] == [expected] * 4
        assert set(result.throughput[endpoint]) == set(TARGETS)
        assert result.throughput[endpoint][DIRECT].per_second > 0
        assert "relay" in result.throughput[endpoint][PROXY].cpu_ms
    assert {PROXIED, FEDERATED} == set(result.delivery) == set(result.send)
    assert all(lat.count == 2 and lat.p50 > 0 for lat in result.delivery.values())
    assert set(result.memory) == {PROXY, PROXY_TLS}
    assert all(m.idle > 0 and m.idle_uss > 0 for m in result.memory.values())
    assert len(result.goals()) == 4

    report = result.markdown()
    assert report.startswith("### `timkit bench proxy` — ")
    for row in (
        "| GET versions | direct |",
        "| GET versions | TCP relay (floor) |",
        "| PUT send | proxy (HTTP) |",
        "| PUT send | proxy (TLS) |",
        f"| {PROXIED} |",
        f"| {FEDERATED} |",
        "| ratio of the p50s |",
        "| `python -m timkit.proxy`, inbound HTTP |",
        "| `python -m timkit.proxy`, inbound TLS |",
        "| added latency p50 ≤ 1 ms, p99 ≤ 5 ms",
        "| throughput loss ≤ 15% at 2 clients |",
        "| cross-organisation delivery p50 ≤ 1.15 x direct federation |",
        "| proxy RSS idle ≤ 40 MB |",
    ):
        assert row in report, row
    # The processes' logs stay with the kept directory; nothing of them may still run.
    assert (tmp_path / "logs" / "proxy-http.log").exists()
    left = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if any(str(tmp_path) in part for part in p.info["cmdline"] or ())
    ]
    assert left == []
