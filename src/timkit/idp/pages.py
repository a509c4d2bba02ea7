"""Server-rendered HTML of the IDP stand-in: the card-selection page and the error page.

The card-selection page stands in for gematik's Authenticator: instead of reading a real
SMC-B or HBA, the user picks one of the virtual cards. Labels are German, or English with
``?lang=en`` or an ``Accept-Language`` that prefers English. Templates are Jinja2 with
autoescaping on, so no card field or request parameter is ever rendered as markup.
"""

from __future__ import annotations

from pathlib import Path

from timkit.core.templates import environment
from timkit.idp.cards import Card

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("de", "en")

LABELS: dict[str, dict[str, str]] = {
    "de": {
        "title": "Anmelden mit Smartcard",
        "intro": "{client} möchte Ihre Identität bestätigt bekommen. Wählen Sie eine Karte.",
        "notice": "Testumgebung: virtuelle Karten statt Authenticator und Kartenterminal.",
        "scope": "Angefragte Berechtigungen",
        "type": "Kartentyp",
        "holder": "Inhaber",
        "telematik_id": "Telematik-ID",
        "profession": "Berufsgruppe",
        "use": "Diese Karte verwenden",
        "cancel": "Abbrechen",
        "error_title": "Anmeldung nicht möglich",
        "error_hint": "Bitte starten Sie die Anmeldung in der Anwendung erneut.",
    },
    "en": {
        "title": "Sign in with a smartcard",
        "intro": "{client} asks to confirm your identity. Choose a card.",
        "notice": "Test environment: virtual cards instead of Authenticator and card terminal.",
        "scope": "Requested permissions",
        "type": "Card type",
        "holder": "Holder",
        "telematik_id": "Telematik-ID",
        "profession": "Profession",
        "use": "Use this card",
        "cancel": "Cancel",
        "error_title": "Sign-in not possible",
        "error_hint": "Please start the sign-in in the application again.",
    },
}

_ENV = environment(TEMPLATES)


def language(requested: str | None, accept_language: str | None) -> str:
    """``de`` or ``en``: ``?lang=`` first, then the first supported ``Accept-Language``."""
    if requested in LANGUAGES:
        return requested
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "de"


def selection_page(
    lang: str, request_id: str, client_id: str, scope: tuple[str, ...], cards: tuple[Card, ...]
) -> str:
    """The card-selection page; each card posts ``request_id`` and ``card`` to ``/auth``."""
    labels = LABELS[lang]
    return _ENV.get_template("select.html").render(
        lang=lang,
        t=labels,
        intro=labels["intro"].format(client=client_id),
        request_id=request_id,
        scope=" ".join(scope),
        cards=cards,
    )


def error_page(lang: str, message: str) -> str:
    """An error page naming ``message`` (errors the client cannot be told by redirect)."""
    return _ENV.get_template("error.html").render(lang=lang, t=LABELS[lang], message=message)
