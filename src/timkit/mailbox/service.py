"""Composition root of the mailbox process: the SMTP server and the HTTP server, one loop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from timkit.core.lifecycle import wait_for_stop
from timkit.core.web import running_app
from timkit.mailbox.api import create_app
from timkit.mailbox.config import MailboxConfig
from timkit.mailbox.messages import Mailbox
from timkit.mailbox.smtp import SmtpServer

log = logging.getLogger(__name__)


@asynccontextmanager
async def running(config: MailboxConfig) -> AsyncIterator[Mailbox]:
    """Start both servers on the configured ports; stop them (SMTP first) afterwards."""
    box = Mailbox(config.max_messages)
    smtp = SmtpServer(box, config.max_message_size)
    async with running_app(create_app(box), config.bind, config.http_port):
        await smtp.start(config.bind, config.smtp_port)
        try:
            yield box
        finally:
            await smtp.close()


async def serve(config: MailboxConfig) -> None:
    """Serve SMTP and HTTP until SIGTERM or SIGINT."""
    # aiosmtpd logs every connection and command at INFO; one line per mail is ours.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    async with running(config):
        log.info(
            "mailbox: SMTP on %s:%d, page and API on http://%s:%d/",
            config.bind,
            config.smtp_port,
            config.bind,
            config.http_port,
        )
        await wait_for_stop()
