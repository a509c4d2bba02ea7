"""Drive the matrix-js-sdk peer (``tests/e2e/jspeer/peer.mjs``): a second Matrix client
implementation, with its Rust crypto, for interop tests.

The peer reads one JSON command per line and answers each with one JSON line; its log goes to
stderr, which this driver collects and puts into every failure message. ``scripts/test-deps``
installs its npm packages (``npm ci``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

PEER_DIR = Path(__file__).resolve().parent.parent / "e2e" / "jspeer"
STDERR_TAIL = 4000  # characters of the peer's log a failure reports
LINE_LIMIT = 1 << 20  # longest answer line accepted
ANSWER_SLACK = 10.0  # seconds a wait_* answer may take beyond the command's own timeout


class JsPeerError(AssertionError):
    """The peer answered with an error, died, or did not answer in time.

    Attributes:
        status: the homeserver's HTTP status of a refused request (0 when there was none).
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class JsPeer:
    """``async with JsPeer(ca_file) as peer: await peer.call("login", ...)``.

    Starts ``node peer.mjs`` on entry (trusting ``ca_file`` via ``NODE_EXTRA_CA_CERTS``),
    sends ``stop`` and kills it on exit. Calls are sequential: one command at a time.
    """

    def __init__(self, ca_file: str, *, timeout: float = 90.0) -> None:
        self.ca_file = ca_file
        self.timeout = timeout
        self._process: asyncio.subprocess.Process | None = None
        self._stderr = bytearray()
        self._stderr_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> JsPeer:
        node = shutil.which("node")
        if node is None or not (PEER_DIR / "node_modules").is_dir():
            raise JsPeerError(
                "node or tests/e2e/jspeer/node_modules missing: run scripts/test-deps"
            )
        self._process = await asyncio.create_subprocess_exec(
            node,
            "peer.mjs",
            cwd=PEER_DIR,
            env={**os.environ, "NODE_EXTRA_CA_CERTS": self.ca_file},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        self._stderr_task = asyncio.create_task(self._collect_stderr())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            try:
                await self.call("stop")
                await asyncio.wait_for(process.wait(), 10)
            except (JsPeerError, TimeoutError):
                pass
        if process.returncode is None:
            process.kill()
            await process.wait()
        if self._stderr_task is not None:
            await self._stderr_task

    async def _collect_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        while chunk := await self._process.stderr.read(4096):
            self._stderr.extend(chunk)
            del self._stderr[:-STDERR_TAIL]  # the SDK logs at debug level: keep the tail only

    def log(self) -> str:
        """The tail of the peer's stderr so far."""
        return self._stderr[-STDERR_TAIL:].decode("utf-8", errors="replace")

    async def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command with ``args`` and return its answer.

        The answer is awaited for the peer's ``timeout``, or ``ANSWER_SLACK`` seconds longer
        than the command's own ``timeout`` argument (wait_* commands) when that is longer.

        Raises:
            JsPeerError: the peer answered ``{"error", "status"}``, exited, or stayed silent.
        """
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise JsPeerError("the peer is not running")
        limit = max(self.timeout, float(args.get("timeout", 0)) + ANSWER_SLACK)
        process.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        try:
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), limit)
        except TimeoutError:
            raise JsPeerError(f"{cmd}: no answer in {limit}s\n{self.log()}") from None
        except ConnectionError:
            line = b""
        if not line:
            await process.wait()
            raise JsPeerError(f"{cmd}: the peer exited {process.returncode}\n{self.log()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise JsPeerError(
                f"{cmd}: {answer['error']} (status {answer['status']})\n{self.log()}",
                int(answer.get("status") or 0),
            )
        return answer
