"""The machine line of every benchmark report."""

from __future__ import annotations

import os
import platform

from timkit.bench.machine import describe_machine


def test_the_machine_line_names_cores_memory_python_and_kernel() -> None:
    line = describe_machine()
    assert line.startswith(f"{os.cpu_count()} cores (")
    assert " GiB, " in line
    assert f"Python {platform.python_version()}" in line
    assert line.endswith(f"{platform.system()} {platform.release()}")
