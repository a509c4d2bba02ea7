"""The heading and machine line of every benchmark report."""

from __future__ import annotations

import os
import platform

from timkit.bench.machine import describe_machine, report_head


def test_the_machine_line_names_cores_memory_python_and_kernel() -> None:
    line = describe_machine()
    assert line.startswith(f"{os.cpu_count()} cores (")
    assert " GiB, " in line
    assert f"Python {platform.python_version()}" in line
    assert line.endswith(f"{platform.system()} {platform.release()}")


def test_every_report_starts_with_its_command_date_and_machine() -> None:
    head = report_head("directory", "embedded SQLite")
    assert head[0].startswith("### `timkit bench directory` — 20")
    assert head[0].endswith(", embedded SQLite")
    assert head[1:] == ["", f"Machine: {describe_machine()}", ""]
    assert not report_head("up")[0].endswith(", ")
