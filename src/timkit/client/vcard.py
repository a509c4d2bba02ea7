"""The vCard 4.0 of the contact exchange by QR code (Client.adoc "Kontaktdatenaustausch mit
2D-Barcode", AF_10061).

:func:`make_vcard` writes the card Client.adoc shows, with RFC 6350 escaping, CRLF line ends
and lines folded at 75 octets::

    BEGIN:VCARD
    VERSION:4.0
    N:<Nachname>;<Vorname>;<zusätzliche Vornamen>;<Titel>;<Namenszusätze>
    FN:<Vorname> <Nachname>
    IMPP:matrix:u/<localpart>:<domain>
    END:VCARD

The IMPP value: Client.adoc's sample writes ``matrix://<MXID>`` and, one line further,
requires the Matrix URI "gemäß Matrix-Appendices". The appendix form is
``matrix:u/<localpart>:<domain>`` (it reserves ``matrix://`` for a future authority part),
which is also what the VZD's Endpoint addresses and gematik's reference client use. So the
SDK writes ``matrix:u/…`` and reads both spellings (:func:`timkit.client.mxid.mxid_from_uri`).

:func:`parse_vcard` reads a scanned card tolerantly (LF or CRLF, folded lines, property
groups and parameters, extra properties, the indented layout of Client.adoc's sample) and
strictly where it matters: exactly one Matrix user id among the IMPP values, no control or
bidirectional formatting characters in the names shown to the actor (a card must not be able
to rewrite the actor's terminal or disguise a name).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from timkit.client.mxid import invalid, matrix_uri, mxid_from_uri, parse_mxid
from timkit.core.errors import TimkitError

RULE = "AF_10061"
"""The use case whose QR exchange the card serves; named in every refusal."""
MAX_CARD = 16 * 1024
"""Longest card text read, in characters (a QR code holds at most 2953 bytes)."""
MAX_NAME = 256
"""Longest name component, in characters (the Freigabeliste's ``displayName`` limit)."""
FOLD_AT = 75
"""Octets per line before folding (RFC 6350 §3.2)."""

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_ESCAPES = {"\\": "\\", ",": ",", ";": ";", "n": "\n", "N": "\n"}
_PROPERTY = re.compile(r"(?:[A-Za-z0-9-]+\.)?(?P<name>[A-Za-z0-9-]+)")


@dataclass(frozen=True)
class ContactCard:
    """The contact data of a TI-M vCard.

    Attributes:
        family_name: ``N`` component 1 (Nachname).
        given_name: ``N`` component 2 (Vorname).
        additional_names: ``N`` component 3 (zusätzliche Vornamen).
        title: ``N`` component 4 (Titel, honorific prefixes).
        suffix: ``N`` component 5 (Namenszusätze).
        full_name: ``FN``; :func:`make_vcard` derives it from the name parts when empty.
        mxid: the user id of ``IMPP`` (``@localpart:domain``).
    """

    family_name: str
    given_name: str
    additional_names: str
    title: str
    suffix: str
    full_name: str
    mxid: str

    def formatted_name(self) -> str:
        """``full_name``, or ``[Titel] [Vorname] [zusätzliche] [Nachname][, Zusatz]``."""
        if self.full_name:
            return self.full_name
        parts = (self.title, self.given_name, self.additional_names, self.family_name)
        name = " ".join(part for part in parts if part)
        return f"{name}, {self.suffix}" if name and self.suffix else name or self.suffix

    def display_name(self) -> str:
        """The name by the TI-M rule ``[Name], [Vorname]`` (Client.adoc, display names).

        Falls back to the one part given, then to the formatted name, then to the MXID.
        """
        if self.family_name and self.given_name:
            return f"{self.family_name}, {self.given_name}"
        return self.family_name or self.given_name or self.formatted_name() or self.mxid


def own_card(mxid: str, display_name: str) -> ContactCard:
    """The card of an actor from their MXID and display name ``[Name], [Vorname]``.

    A display name without ``,`` becomes the family name.

    Raises:
        TimkitError: 400 naming ``mxid`` when it is no user id.
    """
    family, _, given = display_name.partition(",")
    return ContactCard(family.strip(), given.strip(), "", "", "", "", parse_mxid(mxid))


def confirmation(card: ContactCard) -> str:
    """What the actor confirms before the contact joins the Freigabeliste (German, two lines
    with the full name and the MXID, as Client.adoc requires)."""
    return f"Name: {card.formatted_name() or card.display_name()}\nMXID: {card.mxid}"


# -- writing ---------------------------------------------------------------------------------


def make_vcard(card: ContactCard) -> str:
    """The vCard 4.0 text of ``card`` (CRLF line ends, folded, RFC 6350 escaping).

    Raises:
        TimkitError: 400 naming the field when the MXID is invalid or a name holds a
            control character or is longer than :data:`MAX_NAME`.
    """
    uri = matrix_uri(card.mxid)
    parts = {
        "family_name": card.family_name,
        "given_name": card.given_name,
        "additional_names": card.additional_names,
        "title": card.title,
        "suffix": card.suffix,
        "full_name": card.formatted_name(),
    }
    for field, value in parts.items():
        _check_name(value, field)
    n_value = ";".join(
        _escape(parts[k])
        for k in ("family_name", "given_name", "additional_names", "title", "suffix")
    )
    lines = [
        "BEGIN:VCARD",
        "VERSION:4.0",
        f"N:{n_value}",
        f"FN:{_escape(parts['full_name'])}",
        f"IMPP:{uri}",
        "END:VCARD",
    ]
    return "".join(_fold(line) + "\r\n" for line in lines)


def _escape(value: str) -> str:
    """RFC 6350 §3.4 text escaping of ``\\``, ``,`` and ``;`` (names hold no line breaks)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")


def _fold(line: str) -> str:
    """``line`` folded into chunks of at most :data:`FOLD_AT` octets, characters kept whole."""
    chunks: list[str] = []
    current, size, limit = "", 0, FOLD_AT
    for char in line:
        octets = len(char.encode("utf-8"))
        if size + octets > limit:
            chunks.append(current)
            current, size, limit = "", 0, FOLD_AT - 1  # continuation lines start with " "
        current += char
        size += octets
    chunks.append(current)
    return "\r\n ".join(chunks)


# -- reading ---------------------------------------------------------------------------------


def parse_vcard(text: str) -> ContactCard:
    """The contact of a scanned TI-M vCard.

    Reads ``BEGIN:VCARD`` … ``END:VCARD`` with ``VERSION:4.0``; line ends LF, CRLF or CR;
    folded lines; property groups (``item1.IMPP``) and parameters (``IMPP;PREF=1:…``);
    other properties are ignored. ``N`` components holding several values (``Dr.,Prof.``)
    are joined with spaces. ``FN`` missing means it is derived from ``N``.

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` naming what is wrong (``AF_10061``): no vCard,
            several vCards, another version, ``N`` twice or with more than five components, no
            name, a name with control or bidirectional formatting characters, no ``IMPP``
            with a Matrix user id, several different ones, or a malformed Matrix URI.
    """
    if len(text) > MAX_CARD:
        raise invalid("vcard", f"longer than {MAX_CARD} characters", RULE)
    properties = _properties(_content_lines(text))
    versions = [value for name, value in properties if name == "VERSION"]
    if [v.strip() for v in versions] != ["4.0"]:
        raise invalid("VERSION", "the card must be a vCard 4.0 (VERSION:4.0 once)", RULE)
    names = [value for name, value in properties if name == "N"]
    if len(names) > 1:
        raise invalid("N", "given more than once", RULE)
    components = _split(names[0].strip(), ";") if names else []
    if len(components) > 5:
        raise invalid("N", "has more than five components", RULE)
    family, given, additional, title, suffix = (
        [
            " ".join(v for v in (_unescape(x).strip() for x in _split(c, ",")) if v)
            for c in components
        ]
        + [""] * 5
    )[:5]
    full = next((_unescape(v).strip() for name, v in properties if name == "FN"), "")
    card = ContactCard(family, given, additional, title, suffix, full, _impp_mxid(properties))
    fields = (
        ("N", family),
        ("N", given),
        ("N", additional),
        ("N", title),
        ("N", suffix),
        ("FN", full),
    )
    for field, value in fields:
        _check_name(value, field)
    if not card.formatted_name():
        raise invalid("N", "the card names nobody (N and FN are empty)", RULE)
    return card


def _content_lines(text: str) -> list[str]:
    """The unfolded lines from ``BEGIN:VCARD`` to ``END:VCARD`` (both excluded)."""
    raw = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    raw = [line for line in raw if line.strip()]
    if not raw or raw[0].strip().upper() != "BEGIN:VCARD":
        raise invalid("vcard", "the text is no vCard (it must start with BEGIN:VCARD)", RULE)
    lines: list[str] = []
    if len(raw) > 1 and raw[1][:1] in (" ", "\t") and raw[1].strip().upper().startswith("VERSION:"):
        # Client.adoc's sample indents the properties; read it line by line, not folded.
        lines = [line.strip() for line in raw]
    else:
        for line in raw:
            if line[:1] in (" ", "\t") and lines:
                lines[-1] += line[1:]
            else:
                lines.append(line)
    ends = [i for i, line in enumerate(lines) if line.strip().upper() == "END:VCARD"]
    if not ends:
        raise invalid("vcard", "the card has no END:VCARD", RULE)
    rest = lines[ends[0] + 1 :]
    if any(line.strip().upper() == "BEGIN:VCARD" for line in rest):
        raise invalid("vcard", "the code holds more than one vCard", RULE)
    return lines[1 : ends[0]]


def _properties(lines: list[str]) -> list[tuple[str, str]]:
    """``(NAME, value)`` of each content line: group and parameters dropped, name upper-case."""
    properties: list[tuple[str, str]] = []
    for line in lines:
        head, value = _split_head(line)
        match = _PROPERTY.fullmatch(head.split(";", 1)[0].strip())
        if match is None:
            raise invalid("vcard", f"malformed line {line[:40]!r}", RULE)
        properties.append((match["name"].upper(), value))
    return properties


def _split_head(line: str) -> tuple[str, str]:
    """``line`` split at its first ``:`` outside a quoted parameter value."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:i], line[i + 1 :]
    raise invalid("vcard", f"line {line[:40]!r} has no value", RULE)


def _split(value: str, separator: str) -> list[str]:
    """``value`` split at each ``separator`` not escaped with a backslash (still escaped)."""
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current + ("\\" if escaped else ""))
    return parts


def _unescape(value: str) -> str:
    """RFC 6350 §3.4 unescaping; an unknown escape keeps its character."""
    out, escaped = "", False
    for char in value:
        if escaped:
            out += _ESCAPES.get(char, char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out += char
    return out + ("\\" if escaped else "")


def _impp_mxid(properties: list[tuple[str, str]]) -> str:
    """The one Matrix user id among the ``IMPP`` values."""
    found: set[str] = set()
    for name, value in properties:
        if name == "IMPP" and value.strip().lower().startswith("matrix:"):
            try:
                found.add(mxid_from_uri(value, "IMPP"))
            except TimkitError as e:
                raise TimkitError(e.status, e.errcode, e.message, requirement=RULE) from None
    if not found:
        raise invalid("IMPP", "the card holds no Matrix user id (IMPP:matrix:u/…)", RULE)
    if len(found) > 1:
        raise invalid("IMPP", f"the card holds {len(found)} different Matrix user ids", RULE)
    return found.pop()


def _check_name(value: str, field: str) -> None:
    """Refuse names too long or holding control characters (line breaks included: a name
    shown to the actor must not be able to add a line of its own) or bidirectional
    formatting characters."""
    if len(value) > MAX_NAME:
        raise invalid(field, f"longer than {MAX_NAME} characters", RULE)
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS:
            raise invalid(field, f"holds the control character U+{ord(char):04X}", RULE)
