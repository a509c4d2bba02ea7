"""The vCard 4.0 of AF_10061's QR exchange (Client.adoc "Kontaktdatenaustausch mit
2D-Barcode"): made exactly as Client.adoc shows, read tolerantly, refused where it matters."""

from __future__ import annotations

import pytest

from timkit.client.vcard import (
    FOLD_AT,
    ContactCard,
    confirmation,
    make_vcard,
    own_card,
    parse_vcard,
)
from timkit.core.errors import TimkitError

ERIKA = ContactCard("Musterfrau", "Erika", "", "", "", "", "@erika:praxis-sonnenschein.tim.test")


def card(*lines: str, end: str = "\r\n") -> str:
    return end.join(lines) + end


def test_af_10061_the_card_is_client_adoc_s_vcard_with_the_matrix_uri() -> None:
    assert make_vcard(ERIKA) == (
        "BEGIN:VCARD\r\n"
        "VERSION:4.0\r\n"
        "N:Musterfrau;Erika;;;\r\n"
        "FN:Erika Musterfrau\r\n"
        "IMPP:matrix:u/erika:praxis-sonnenschein.tim.test\r\n"
        "END:VCARD\r\n"
    )


def test_umlauts_and_escaped_characters_survive_the_round_trip() -> None:
    tricky = ContactCard(
        "Müller-Lüdenscheidt; Söhne",
        "Jürgen, gen. Jü",
        "Maria\\Theresia",
        "Dr. med.",
        "MBA",
        "",
        "@juergen:klinikum-nord.tim.test",
    )
    text = make_vcard(tricky)
    unfolded = text.replace("\r\n ", "")
    assert (
        "N:Müller-Lüdenscheidt\\; Söhne;Jürgen\\, gen. Jü;Maria\\\\Theresia;Dr. med.;MBA\r\n"
        in unfolded
    )
    assert (
        "FN:Dr. med. Jürgen\\, gen. Jü Maria\\\\Theresia Müller-Lüdenscheidt\\; Söhne\\, MBA"
        in unfolded
    )
    parsed = parse_vcard(text)
    assert parsed == ContactCard(
        "Müller-Lüdenscheidt; Söhne",
        "Jürgen, gen. Jü",
        "Maria\\Theresia",
        "Dr. med.",
        "MBA",
        "Dr. med. Jürgen, gen. Jü Maria\\Theresia Müller-Lüdenscheidt; Söhne, MBA",
        "@juergen:klinikum-nord.tim.test",
    )
    assert parse_vcard(make_vcard(parsed)) == parsed


def test_long_lines_are_folded_at_75_octets_without_splitting_a_character() -> None:
    long = ContactCard("Ä" * 100, "Ö" * 100, "", "", "", "Ü" * 200, "@a:example.org")
    text = make_vcard(long)
    lines = text.split("\r\n")
    assert lines[-1] == ""
    assert all(len(line.encode("utf-8")) <= FOLD_AT for line in lines)
    assert sum(line.startswith(" ") for line in lines) >= 6
    assert parse_vcard(text) == long


def test_display_name_follows_the_name_vorname_rule() -> None:
    assert ERIKA.display_name() == "Musterfrau, Erika"
    assert own_card("@erika:Praxis.tim.test", "Musterfrau, Erika") == ContactCard(
        "Musterfrau", "Erika", "", "", "", "", "@erika:praxis.tim.test"
    )
    assert own_card("@empfang:praxis.tim.test", "Empfang").display_name() == "Empfang"
    only_fn = ContactCard("", "", "", "", "", "Praxis Sonnenschein", "@p:praxis.tim.test")
    assert only_fn.display_name() == "Praxis Sonnenschein"
    assert (
        confirmation(ERIKA) == "Name: Erika Musterfrau\nMXID: @erika:praxis-sonnenschein.tim.test"
    )


def test_client_adoc_s_own_spelling_and_layout_are_read() -> None:
    """The sample as Client.adoc prints it: indented, trailing blanks, ``matrix://<MXID>``."""
    sample = (
        "BEGIN:VCARD\n"
        "  VERSION:4.0 \n"
        "  N:Musterfrau;Erika;;; \n"
        "  FN:Erika Musterfrau \n"
        "  IMPP:matrix://@erika:praxis-sonnenschein.tim.test \n"
        "END:VCARD\n"
    )
    assert parse_vcard(sample) == ContactCard(
        "Musterfrau", "Erika", "", "", "", "Erika Musterfrau", ERIKA.mxid
    )


@pytest.mark.parametrize(
    "impp",
    [
        "matrix:u/erika:praxis-sonnenschein.tim.test",
        "matrix://@erika:praxis-sonnenschein.tim.test",
        "matrix:u/erika:Praxis-Sonnenschein.tim.test?action=chat",
    ],
)
def test_both_impp_spellings_are_read(impp: str) -> None:
    text = card("BEGIN:VCARD", "VERSION:4.0", "N:Musterfrau;Erika;;;", f"IMPP:{impp}", "END:VCARD")
    assert parse_vcard(text).mxid == ERIKA.mxid


def test_what_other_apps_add_is_tolerated() -> None:
    """LF line ends, folding (also with a tab), groups, parameters with a quoted colon, extra
    properties, other IMPP schemes, N with multiple values, lower-case names, no FN."""
    text = card(
        "\ufeffBEGIN:VCARD",
        "version:4.0",
        'N;SORT-AS="Muster:frau";LANGUAGE=de:Muster',
        " frau;Erika,Ilse;;Dr.,Prof.;",
        "TEL;TYPE=work:+49 30 1234",
        "EMAIL:erika@example.org",
        "item1.IMPP;PREF=1:matrix:u/erika:praxis-sonnen",
        "\tschein.tim.test",
        "IMPP:xmpp:erika@example.org",
        "X-SOCIALPROFILE;TYPE=matrix:https://matrix.to/#/@someone:else.org",
        "END:VCARD",
        end="\n",
    )
    assert parse_vcard(text) == ContactCard(
        "Musterfrau", "Erika Ilse", "", "Dr. Prof.", "", "", ERIKA.mxid
    )
    assert parse_vcard(text).formatted_name() == "Dr. Prof. Erika Ilse Musterfrau"


def test_the_same_mxid_twice_is_one() -> None:
    text = card(
        "BEGIN:VCARD",
        "VERSION:4.0",
        "FN:Erika Musterfrau",
        "IMPP:matrix:u/erika:praxis-sonnenschein.tim.test",
        "IMPP:matrix://@erika:PRAXIS-sonnenschein.tim.test",
        "END:VCARD",
    )
    assert parse_vcard(text).mxid == ERIKA.mxid


GOOD = ["BEGIN:VCARD", "VERSION:4.0", "N:Musterfrau;Erika;;;", "FN:Erika Musterfrau"]
IMPP = "IMPP:matrix:u/erika:praxis-sonnenschein.tim.test"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "vcard"),
        ("hello world", "vcard"),
        ("@erika:praxis-sonnenschein.tim.test", "vcard"),
        (card(*GOOD, IMPP), "vcard"),  # no END:VCARD
        (card(*GOOD, IMPP, "END:VCARD", *GOOD, IMPP, "END:VCARD"), "vcard"),
        (card(*GOOD, "IMPP", "END:VCARD"), "vcard"),
        (card(*GOOD, "BAD NAME:x", IMPP, "END:VCARD"), "vcard"),
        (card("BEGIN:VCARD", "VERSION:3.0", *GOOD[2:], IMPP, "END:VCARD"), "VERSION"),
        (card("BEGIN:VCARD", *GOOD[2:], IMPP, "END:VCARD"), "VERSION"),
        (card(*GOOD, "END:VCARD"), "IMPP"),
        (card(*GOOD, "IMPP:xmpp:erika@example.org", "END:VCARD"), "IMPP"),
        (card(*GOOD, "IMPP:matrix:r/team:praxis-sonnenschein.tim.test", "END:VCARD"), "IMPP"),
        (card(*GOOD, "IMPP:matrix:u/erika", "END:VCARD"), "IMPP"),
        (card(*GOOD, IMPP, "IMPP:matrix:u/mallory:evil.example", "END:VCARD"), "IMPP"),
        (card(*GOOD, "N:Other;Name;;;", IMPP, "END:VCARD"), "N"),
        (card(*GOOD[:2], "N:a;b;c;d;e;f", IMPP, "END:VCARD"), "N"),
        (card(*GOOD[:2], "N:;;;;", "FN:", IMPP, "END:VCARD"), "N"),
        (card(*GOOD[:2], IMPP, "END:VCARD"), "N"),
        (card(*GOOD[:2], "N:" + "A" * 300 + ";Erika;;;", IMPP, "END:VCARD"), "N"),
    ],
)
def test_malformed_cards_are_a_400_naming_what_is_wrong(text: str, field: str) -> None:
    with pytest.raises(TimkitError) as raised:
        parse_vcard(text)
    assert raised.value.status == 400
    assert raised.value.errcode == "M_INVALID_PARAM"
    assert raised.value.message.startswith(f"{field}: "), raised.value.message
    assert raised.value.requirement == "AF_10061"


@pytest.mark.parametrize(
    "fn",
    [
        "Erika \x1b]0;pwned\x07\x1b[2J Musterfrau",  # terminal escape sequences
        "Erika Musterfrau\\nMXID: @chefarzt:klinikum-nord.tim.test",  # an extra line
        "Erika\u2028MXID: @chefarzt:klinikum-nord.tim.test",
        "Erika \u202eutsretsuM",  # right-to-left override
        "Erika\x00Musterfrau",
        "Erika\x85Musterfrau",
    ],
)
def test_a_name_that_could_rewrite_what_the_actor_sees_is_refused(fn: str) -> None:
    """The name is shown to the actor before they confirm: it must not forge the MXID line
    or drive their terminal."""
    with pytest.raises(TimkitError) as raised:
        parse_vcard(card(*GOOD[:3], f"FN:{fn}", IMPP, "END:VCARD"))
    assert raised.value.status == 400
    assert raised.value.message.startswith("FN: ")


def test_a_card_is_only_made_of_a_valid_mxid_and_printable_names() -> None:
    with pytest.raises(TimkitError) as raised:
        make_vcard(ContactCard("Musterfrau", "Erika", "", "", "", "", "erika"))
    assert raised.value.message.startswith("mxid: ")
    with pytest.raises(TimkitError) as raised:
        make_vcard(ContactCard("Muster\nfrau", "Erika", "", "", "", "", ERIKA.mxid))
    assert raised.value.message.startswith("family_name: ")


def test_an_overlong_text_is_refused_before_it_is_read() -> None:
    with pytest.raises(TimkitError) as raised:
        parse_vcard(card(*GOOD, IMPP, "NOTE:" + "x" * 20000, "END:VCARD"))
    assert raised.value.message.startswith("vcard: ")
