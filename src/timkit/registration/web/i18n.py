"""Language choice and the string catalogues (``i18n/de.json``, ``i18n/en.json``).

The language is ``?lang=de|en`` (remembered in the cookie :data:`LANG_COOKIE`), else that
cookie, else German. Every key exists in both catalogues (a test checks it); a missing key
renders as the key itself so a gap is visible, never an exception.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from aiohttp import web

LANGUAGES = ("de", "en")
DEFAULT = "de"
LANG_COOKIE = "__Host-rd-lang"
CATALOGUES = Path(__file__).parent / "i18n"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The strings of ``lang``."""
    data = json.loads((CATALOGUES / f"{lang}.json").read_text("utf-8"))
    return {str(k): str(v) for k, v in data.items()}


def language(request: web.Request) -> str:
    """The language to answer ``request`` in."""
    asked = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or DEFAULT
    return asked if asked in LANGUAGES else DEFAULT


def translator(lang: str) -> Translator:
    """A ``t(key, **values)`` function for ``lang``."""
    return Translator(catalogue(lang))


class Translator:
    """Looks up and formats catalogue strings (``{name}`` placeholders)."""

    def __init__(self, strings: dict[str, str]) -> None:
        self._strings = strings

    def __call__(self, key: str, **values: object) -> str:
        text = self._strings.get(key, key)
        return text.format(**values) if values else text
