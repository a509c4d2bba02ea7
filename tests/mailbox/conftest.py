"""Mailbox fixtures: the real SMTP and HTTP servers, in-process, on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import smtplib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import tomli_w

from tests.support.wait import wait_until
from timkit.core.config import parse_config
from timkit.core.process import free_port
from timkit.mailbox.config import MailboxConfig
from timkit.mailbox.service import running


@dataclass
class Box:
    """A running mailbox.

    Attributes:
        smtp_port: where to send mail.
        url: base URL of the page and API.
        http: client for :attr:`url`.
    """

    smtp_port: int
    url: str
    http: httpx.AsyncClient

    def _send(self, message: EmailMessage, to_addrs: list[str] | None) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as smtp:
            smtp.send_message(message, to_addrs=to_addrs)

    async def send(self, message: EmailMessage, to_addrs: list[str] | None = None) -> None:
        """Send ``message`` with stdlib smtplib (in a thread: the servers run on this loop).

        ``to_addrs`` overrides the envelope recipients (default: the message's To).
        """
        await asyncio.to_thread(self._send, message, to_addrs)

    async def messages(self, to: str | None = None) -> list[dict[str, object]]:
        """``GET /api/messages``."""
        params = {"to": to} if to else {}
        response = await self.http.get(self.url + "/api/messages", params=params)
        assert response.status_code == 200, response.text
        result: list[dict[str, object]] = response.json()
        return result


def mail(to: str, subject: str, text: str = "", html: str = "") -> EmailMessage:
    """A message from the Registrierungs-Dienst to ``to``."""
    message = EmailMessage()
    message["From"] = "Registrierungs-Dienst <rd@tim.test>"
    message["To"] = to
    message["Subject"] = subject
    if text:
        message.set_content(text)
    if html:
        if text:
            message.add_alternative(html, subtype="html")
        else:
            message.set_content(html, subtype="html")
    return message


@pytest.fixture
async def box() -> AsyncIterator[Box]:
    """A mailbox keeping at most 5 messages."""
    config = parse_config(
        MailboxConfig, {"smtp_port": free_port(), "http_port": free_port(), "max_messages": 5}
    )
    async with running(config), httpx.AsyncClient(timeout=10) as http:
        yield Box(config.smtp_port, f"http://127.0.0.1:{config.http_port}", http)


@dataclass
class MailboxProcess:
    """A ``python -m timkit.mailbox`` process (:func:`mailbox_process`).

    Attributes:
        smtp_port: where to send mail.
        url: base URL of the page and API.
        process: the child process.
        stderr: its log, once it has stopped.
    """

    smtp_port: int
    url: str
    process: subprocess.Popen[str]
    stderr: str = ""


@contextlib.contextmanager
def mailbox_process(tmp_path: Path) -> Iterator[MailboxProcess]:
    """Run the mailbox as its own process on free ports until ``/health`` answers; on leaving,
    stop it with SIGTERM and keep its return code and log."""
    smtp_port, http_port = free_port(), free_port()
    config = tmp_path / "mailbox.toml"
    config.write_text(tomli_w.dumps({"smtp_port": smtp_port, "http_port": http_port}))
    process = subprocess.Popen(
        [sys.executable, "-m", "timkit.mailbox", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    box = MailboxProcess(smtp_port, f"http://127.0.0.1:{http_port}", process)
    try:

        def healthy() -> bool:
            try:
                return httpx.get(box.url + "/health").status_code == 200
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                return False

        wait_until(healthy, "the mailbox's /health")
        yield box
    finally:
        process.send_signal(signal.SIGTERM)
        _, box.stderr = process.communicate(timeout=30)
