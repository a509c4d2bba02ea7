"""Parsing the X-Matrix authorization header."""

from __future__ import annotations

import pytest

from timkit.proxy.xmatrix import parse_x_matrix

ORIGIN = "praxis-sonnenschein.tim.test"
DOMAIN = "klinikum-nord.tim.test"
X_MATRIX = (
    f'X-Matrix origin="{ORIGIN}", destination={DOMAIN},key="ed25519:a_bcd",'
    'sig="dGhpcyBpcyBub3QgYSByZWFsIHNpZw"'
)


def test_parse_x_matrix_handles_quoting_spacing_and_case() -> None:
    assert parse_x_matrix(X_MATRIX) == {
        "origin": ORIGIN,
        "destination": DOMAIN,
        "key": "ed25519:a_bcd",
        "sig": "dGhpcyBpcyBub3QgYSByZWFsIHNpZw",
    }
    assert parse_x_matrix('x-matrix Origin=a.test , destination="b\\"c" ,') == {
        "origin": "a.test",
        "destination": 'b"c',
    }
    assert parse_x_matrix("Bearer abc") is None
    for bad in ("X-Matrix origin", "X-Matrix a=b,,c=d", "X-Matrix a=b,a=c", 'X-Matrix a="b'):
        with pytest.raises(ValueError, match=r"X-Matrix"):
            parse_x_matrix(bad)
