"""Parsing received mail: the text of an HTML-only mail keeps its links and drops scripts."""

from __future__ import annotations

import pytest

from timkit.mailbox.messages import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<style>p{}</style><p>a</p><p>b</p>", "a\nb"),
        ('<a href="https://x/">https://x/</a>', "https://x/ <https://x/>"),
        ("<script>evil()</script>ok", "ok"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text
