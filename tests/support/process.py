"""Child processes of the test session's own servers (PostgreSQL, slapd): set-up and stop."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.wait import wait_until

_PR_SET_PDEATHSIG = 1
LOG_TAIL = 2000  # characters of a server's log a failed start reports


def child_setup(
    user: pwd.struct_passwd | None, death_signal: int | None = None
) -> Callable[[], None] | None:
    """A ``preexec_fn``: drop to ``user`` (when given), then ask Linux to send ``death_signal``
    (when given) once the test process dies, so that a run killed outright leaves no server
    behind. The signal is set after the user change, which would otherwise clear it.

    Returns:
        ``None`` when there is nothing to do (no user, no signal).
    """
    if user is None and death_signal is None:
        return None

    def setup() -> None:
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        name = ctypes.util.find_library("c")
        if death_signal is not None and name is not None:
            ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal)

    return setup


def wait_ready(
    process: subprocess.Popen[Any],
    what: str,
    accepts: Callable[[], bool],
    log: Path,
    timeout: float,
) -> None:
    """Poll ``accepts()`` until it is true.

    Raises:
        RuntimeError: ``process`` exited first; the message holds the tail of its ``log``.
        TimeoutError: ``accepts()`` stayed false for ``timeout`` seconds.
    """

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-LOG_TAIL:]}")
        return accepts()

    wait_until(ready, f"{what} to accept connections", timeout=timeout)


def stop(process: subprocess.Popen[Any], sig: int, timeout: float) -> None:
    """Send ``sig`` to ``process``; kill it if it has not exited within ``timeout`` seconds;
    reap it either way."""
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
