"""User ids and Matrix URIs (Matrix spec appendix "URIs"), as the SDK checks them."""

from __future__ import annotations

import pytest

from timkit.client.mxid import matrix_uri, mxid_from_uri, parse_mxid
from timkit.core.errors import TimkitError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("@alice:example.org", "@alice:example.org"),
        ("@Alice:Example.ORG", "@Alice:example.org"),
        ("@a.b_c=d/e+f:example.org:8448", "@a.b_c=d/e+f:example.org:8448"),
        ("@alice:[2001:db8::1]:8448", "@alice:[2001:db8::1]:8448"),
        ("@alice:192.0.2.7", "@alice:192.0.2.7"),
    ],
)
def test_user_ids_are_accepted_with_the_server_name_lower_cased(value: str, expected: str) -> None:
    assert parse_mxid(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "alice:example.org",
        "@alice",
        "@:example.org",
        "@alice:",
        "@al ice:example.org",
        "@alicé:example.org",
        "@alice:exa_mple.org",
        "@alice:example.org:0",
        "@alice:example.org:70000",
        "@alice:[not-ipv6]",
        "@alice:[::1]x",
        "@alice:example.org\n",
        "@" + "a" * 250 + ":example.org",
    ],
)
def test_anything_else_is_a_400_naming_the_field(value: str) -> None:
    with pytest.raises(TimkitError) as raised:
        parse_mxid(value, "Mxid")
    assert raised.value.status == 400
    assert raised.value.errcode == "M_INVALID_PARAM"
    assert raised.value.message.startswith("Mxid: ")


def test_the_matrix_uri_is_the_appendix_form_with_odd_characters_percent_encoded() -> None:
    assert matrix_uri("@alice:Example.org") == "matrix:u/alice:example.org"
    assert (
        matrix_uri("@a;b,c/d?e#f%g:example.org") == "matrix:u/a%3Bb%2Cc%2Fd%3Fe%23f%25g:example.org"
    )
    assert matrix_uri("@alice:[::1]:8448") == "matrix:u/alice:%5B::1%5D:8448"
    for mxid in ("@a;b,c/d?e#f%g:example.org", "@alice:[::1]:8448", "@x=y:example.org"):
        assert mxid_from_uri(matrix_uri(mxid)) == mxid


@pytest.mark.parametrize(
    "uri",
    [
        "matrix:u/alice:example.org",
        "MATRIX:u/alice:example.org",
        "matrix:user/alice:example.org",
        "matrix:u/alice:example.org?action=chat",
        "matrix:u/alice:example.org#fragment",
        "matrix:u/%61lice:example.org",
        " matrix:u/alice:example.org ",
        "matrix://@alice:example.org",
        "matrix://alice:example.org",
        "matrix://%40alice%3Aexample.org",
        "matrix://@alice:example.org/",
    ],
)
def test_both_spellings_name_the_user(uri: str) -> None:
    assert mxid_from_uri(uri) == "@alice:example.org"


@pytest.mark.parametrize(
    "uri",
    [
        "https://matrix.to/#/@alice:example.org",
        "@alice:example.org",
        "matrix:r/room:example.org",
        "matrix:roomid/abc:example.org",
        "matrix:u/alice:example.org/e/event",
        "matrix:U/alice:example.org",
        "matrix:u/alice",
        "matrix:u/al%0Aice:example.org",
        "matrix:u/al%20ice:example.org",
        "matrix://@alice:example.org/extra",
        "matrix:",
    ],
)
def test_other_uris_are_refused_naming_the_field(uri: str) -> None:
    with pytest.raises(TimkitError) as raised:
        mxid_from_uri(uri, "IMPP")
    assert raised.value.status == 400
    assert raised.value.message.startswith("IMPP: ")
