"""Server-rendered HTML of the mailbox: the message list and one message.

Everything a mail brings is escaped (Jinja2 autoescaping); an HTML body is shown as its
source text, never rendered. In text bodies ``http(s)`` URLs become links, built from
escaped pieces only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from markupsafe import Markup, escape

from timkit.core.templates import environment
from timkit.mailbox.messages import Message

TEMPLATES = Path(__file__).parent / "templates"
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


def linkify(text: str) -> Markup:
    """``text`` escaped, with each ``http(s)`` URL turned into a link opening in a new tab."""
    pieces: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        pieces.append(escape(text[position : match.start()]))
        pieces.append(
            Markup('<a href="{0}" rel="noopener noreferrer" target="_blank">{0}</a>').format(url)
        )
        position = match.end()
    pieces.append(escape(text[position:]))
    return Markup("").join(pieces)


_ENV = environment(TEMPLATES)
_ENV.filters["linkify"] = linkify


def list_page(messages: Iterable[Message], to: str) -> str:
    """The mailbox: messages newest first, filtered to recipient ``to`` when not empty."""
    return _ENV.get_template("list.html").render(messages=list(messages), to=to)


def message_page(message: Message) -> str:
    """One message: headers, text body with links, HTML body as source."""
    return _ENV.get_template("message.html").render(message=message)


def error_page(status: int, message: str) -> str:
    """An error page."""
    return _ENV.get_template("error.html").render(status=status, message=message)
