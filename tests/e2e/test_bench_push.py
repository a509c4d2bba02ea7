"""``timkit bench push`` in a tiny configuration: it runs and reports every row.

Benchmarks measure, tests do not time: nothing here asserts a goal is met. It runs as the
CLI does, in its own process (``up`` leaves the supervisor running detached). It boots a whole
one-service federation.
"""

from __future__ import annotations

import subprocess
import sys


def test_bench_push_reports_latency_throughput_and_goals() -> None:
    tiny = ("--messages", "3", "--clients", "2", "--seconds", "0.3")
    run = subprocess.run(
        [sys.executable, "-m", "timkit", "bench", "push", *tiny],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report = run.stdout
    assert "3 messages sent one at a time" in report
    rows = {line.split(" | ")[0].strip("| "): line for line in report.splitlines()}
    assert "Synapse → Push-Gateway → WebPush receiver (decrypted)" in rows
    assert "baseline: Synapse → bare notify sink" in rows
    for phase in (
        "gateway → WebPush receiver (aes128gcm + VAPID)",
        "gateway → UnifiedPush receiver",
        "baseline: direct POST to the UnifiedPush receiver",
    ):
        done, failed = rows[phase].split(" | ")[1:3]
        assert int(done) > 0
        assert int(failed) == 0
    assert "send → push p50 ≤ 100 ms" in report
    assert "≥ 1,000 notifications/s" in report
