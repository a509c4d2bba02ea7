"""The SMTP side: aiosmtpd on the service's own event loop, accepting mail for anyone.

No TLS, no AUTH: the mailbox listens on loopback for the local run only. Messages larger
than ``max_message_size`` are refused by aiosmtpd (552) before they reach the mailbox.
"""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.smtp import SMTP, Envelope, Session

from timkit.mailbox.messages import Mailbox

log = logging.getLogger(__name__)

HOSTNAME = "mailbox.timkit.local"


class DeliveryHandler:
    """aiosmtpd handler that delivers each accepted mail into a :class:`Mailbox`."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Keep the message; every recipient gets it."""
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content or "").encode()
        message = self._mailbox.deliver(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        log.info(
            "mail %d from %s to %s: %s",
            message.id,
            message.sender,
            ", ".join(message.recipients),
            message.subject,
        )
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP listener for ``mailbox``.

    Args:
        mailbox: where accepted mail goes.
        max_size: the largest message accepted, in bytes.
    """

    def __init__(self, mailbox: Mailbox, max_size: int) -> None:
        self._handler = DeliveryHandler(mailbox)
        self._max_size = max_size
        self._server: asyncio.Server | None = None
        self._sessions: set[SMTP] = set()

    def _protocol(self) -> SMTP:
        protocol = SMTP(
            self._handler,
            data_size_limit=self._max_size,
            enable_SMTPUTF8=True,
            hostname=HOSTNAME,
            loop=asyncio.get_running_loop(),
        )
        # A session whose connection was made (session set) and lost (transport dropped).
        self._sessions = {s for s in self._sessions if s.session is None or s.transport}
        self._sessions.add(protocol)
        return protocol

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host``:``port``; returns the bound port (``port`` 0 picks one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and drop open sessions."""
        if self._server is None:
            return
        self._server.close()
        for session in self._sessions:
            if session.transport is not None:
                session.transport.close()
        self._sessions.clear()
        await self._server.wait_closed()
