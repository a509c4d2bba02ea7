"""Received mail: parsing with the stdlib ``email`` package, and the in-memory ring of it.

A :class:`Message` keeps what the mailbox shows: envelope sender and recipients, the headers
people read, the text body and the HTML body as source. When a mail has no text part its
text is derived from the HTML (tags dropped, link targets kept), so a confirmation link can
be followed from :attr:`Message.text` either way. Nothing here ever renders HTML.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

_SKIPPED_TAGS = frozenset({"script", "style", "head", "title"})
_BLOCK_TAGS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table"})


@dataclass(frozen=True)
class Message:
    """One received mail.

    Attributes:
        id: number in order of arrival (starting at 1).
        sender: the ``From`` header, or the envelope sender when it has none.
        recipients: the envelope recipients (lower case), who the mail was delivered to.
        subject: the ``Subject`` header.
        date: the ``Date`` header, or the time of arrival when it has none or a bad one.
        received: the time of arrival (UTC).
        text: the text body (or the text of the HTML body).
        html: the HTML body as source text ("" if none).
    """

    id: int
    sender: str
    recipients: tuple[str, ...]
    subject: str
    date: dt.datetime
    received: dt.datetime
    text: str
    html: str

    def summary(self) -> dict[str, Any]:
        """The JSON form: ``{id, from, to, subject, date, text}`` (plus ``received``)."""
        return {
            "id": self.id,
            "from": self.sender,
            "to": list(self.recipients),
            "subject": self.subject,
            "date": self.date.isoformat(),
            "received": self.received.isoformat(),
            "text": self.text,
        }

    def details(self) -> dict[str, Any]:
        """The JSON form of one message: :meth:`summary` plus ``html``."""
        return {**self.summary(), "html": self.html}

    def addressed_to(self, address: str) -> bool:
        """Whether ``address`` (any case) is one of the recipients."""
        return address.strip().lower() in self.recipients


class _TextOfHtml(HTMLParser):
    """Text content of an HTML document; ``<a href>`` targets follow their text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._href: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag == "a":
            self._href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag == "a" and self._href:
            href = self._href.pop()
            if href:
                self.parts.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The readable text of ``html``, link targets in angle brackets after their text."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # unknown charset, broken transfer encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def parse(
    id: int, raw: bytes, mail_from: str, rcpt_tos: list[str], received: dt.datetime
) -> Message:
    """A :class:`Message` from the raw RFC 5322 bytes and the SMTP envelope."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # the default policy's message factory
    html = _body(message, "html")
    text = _body(message, "plain") or html_to_text(html)
    try:
        date = parsedate_to_datetime(str(message["Date"])) if message["Date"] else received
    except (TypeError, ValueError):
        date = received
    return Message(
        id=id,
        sender=str(message["From"] or mail_from),
        recipients=tuple(r.lower() for r in rcpt_tos),
        subject=str(message["Subject"] or ""),
        date=date,
        received=received,
        text=text.strip(),
        html=html,
    )


class Mailbox:
    """The last ``capacity`` messages, in memory.

    Used from the event loop only (SMTP handler and HTTP handlers share it), so no locking.

    Args:
        capacity: messages kept; the oldest are dropped first.
    """

    def __init__(self, capacity: int) -> None:
        self._messages: deque[Message] = deque(maxlen=capacity)
        self._ids = itertools.count(1)

    def deliver(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> Message:
        """Parse and keep one mail; returns it."""
        message = parse(next(self._ids), raw, mail_from, rcpt_tos, dt.datetime.now(dt.UTC))
        self._messages.append(message)
        return message

    def newest_first(self, to: str | None = None) -> Iterator[Message]:
        """The messages, newest first; only those delivered to ``to`` when given."""
        for message in reversed(self._messages):
            if not to or message.addressed_to(to):
                yield message

    def get(self, id: int) -> Message | None:
        """Message ``id``, if still kept."""
        return next((m for m in self._messages if m.id == id), None)

    def clear(self, to: str | None = None) -> int:
        """Delete all messages (only those delivered to ``to`` when given); returns how many."""
        kept = [m for m in self._messages if to and not m.addressed_to(to)]
        removed = len(self._messages) - len(kept)
        self._messages.clear()
        self._messages.extend(kept)
        return removed
