"""Configuration of the mailbox (``python -m timkit.mailbox --config mailbox.toml``).

See ``config/mailbox.sample.toml``. Every key has a default, so a development run needs no
file.
"""

from __future__ import annotations

from pydantic import Field

from timkit.core.config import StrictModel


class MailboxConfig(StrictModel):
    """Top level of the mailbox's TOML file.

    Attributes:
        bind: listen address of both servers (loopback: the mailbox has no authentication).
        smtp_port: SMTP port; accepts mail for any recipient, no TLS, no AUTH.
        http_port: HTTP port of the mailbox page and the JSON API.
        max_messages: messages kept (in memory); the oldest go first.
        max_message_size: largest message accepted, in bytes (SMTP ``SIZE``).
        log_level: Python log level.
    """

    bind: str = "127.0.0.1"
    smtp_port: int = Field(default=8425, ge=0, le=65535)
    http_port: int = Field(default=8426, ge=0, le=65535)
    max_messages: int = Field(default=1000, ge=1, le=100_000)
    max_message_size: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_level: str = "INFO"
