"""The machine line and heading of every benchmark report."""

from __future__ import annotations

import datetime as dt
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


def report_head(command: str, note: str = "") -> list[str]:
    """The first lines of every report: its heading (``timkit bench <command>``, today's date,
    ``note`` when given) and the machine line, each followed by a blank line."""
    title = f"### `timkit bench {command}` — {dt.date.today().isoformat()}"
    return [f"{title}, {note}" if note else title, "", f"Machine: {describe_machine()}", ""]
