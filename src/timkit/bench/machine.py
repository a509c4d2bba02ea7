"""A one-line description of this machine, for benchmark reports."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil


def describe_machine() -> str:
    """CPU count and model, memory, Python and kernel, e.g. for ``docs/benchmarks.md``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
