"""The ``timkit`` command's entry point (run as a real process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.federation import write_config
from timkit.cli.main import SIGPIPE_EXIT


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``timkit status --json | head`` once ended in a BrokenPipeError traceback."""
    config = write_config(tmp_path, services=1)
    child = subprocess.Popen(
        [sys.executable, "-m", "timkit", "--config", str(config), "status", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    child.stdout.close()  # the reader is gone before the first line is written
    with child.stderr:
        stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == SIGPIPE_EXIT
    assert "Traceback" not in stderr
    assert "BrokenPipe" not in stderr
