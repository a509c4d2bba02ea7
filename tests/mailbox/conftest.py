"""Mailbox fixtures: the real SMTP and HTTP servers, in-process, on free ports."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
import pytest

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
