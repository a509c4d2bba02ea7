"""The search parser (:mod:`timkit.directory.query`) and the full-text translation.

Unit tests pin the parsed form of each kind of parameter; property tests (hypothesis) check
that no input makes the parser fail other than with a 400, that paging cursors and escaped OR
lists round-trip, and that every full-text query either is a 400 or runs on the real SQLite
FTS5 table and PostgreSQL ``tsvector`` column of the directory schema.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.postgres import PostgresServer
from timkit.core.db import Database
from timkit.core.errors import IssueType, TimkitError
from timkit.core.fhir import RESOURCE_TYPES
from timkit.directory.indexing import text_words
from timkit.directory.query import (
    DEFAULT_COUNT,
    MAX_COUNT,
    MAX_NESTING,
    Chain,
    Column,
    Cursor,
    FullText,
    Has,
    Match,
    Near,
    SearchQuery,
    parse_search,
    split_values,
)
from timkit.directory.searchparams import REGISTRY
from timkit.directory.service import open_directory
from timkit.directory.storage.fulltext import fts5_query, tsquery

_numbers = itertools.count()
T = TypeVar("T")


def _parse(resource_type: str, query: str, *, strict: bool = False) -> SearchQuery:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    return parse_search(resource_type, [(n, v) for n, v in pairs], strict=strict)


def _outcome(function: Callable[..., T], *args: Any) -> T | TimkitError:
    """``function(*args)``, or the :class:`TimkitError` it raised (any other error fails)."""
    try:
        return function(*args)
    except TimkitError as e:
        return e


def _error(
    resource_type: str, pairs: list[tuple[str, str]], *, strict: bool = False
) -> TimkitError:
    with pytest.raises(TimkitError) as caught:
        parse_search(resource_type, pairs, strict=strict)
    return caught.value


# -- split_values ------------------------------------------------------------------------


def test_split_values_splits_on_unescaped_commas_only() -> None:
    assert split_values("a,b") == ("a", "b")
    assert split_values(r"a\,b,c") == ("a,b", "c")
    assert split_values(r"a\\,b") == ("a\\", "b")
    assert split_values(r"a\|b\$c") == ("a|b$c",)
    assert split_values(r"a\xb") == (r"a\xb",)
    assert split_values("") == ("",)


def test_split_values_keeps_a_trailing_backslash() -> None:
    assert split_values("a\\") == ("a\\",)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,")


@given(st.lists(st.text(), min_size=1, max_size=6))
@example(["a\\"])
@example(["", ","])
def test_split_values_round_trips_escaped_values(values: list[str]) -> None:
    assert split_values(",".join(_escape(v) for v in values)) == tuple(values)


# -- criteria ----------------------------------------------------------------------------


def test_ml_123880_token_string_reference_and_date_criteria() -> None:
    query = _parse(
        "PractitionerRole",
        "identifier=sys|1,|2&_tag:not=owner&date=ge2024-01-01&practitioner=Practitioner/p1",
    )
    identifier, tag, date, practitioner = query.criteria
    assert identifier == Match(REGISTRY["PractitionerRole"]["identifier"], None, ("sys|1", "|2"))
    assert tag == Match(REGISTRY["PractitionerRole"]["_tag"], "not", ("owner",))
    assert date == Match(REGISTRY["PractitionerRole"]["date"], None, ("ge2024-01-01",))
    assert isinstance(practitioner, Match)
    assert practitioner.values == ("Practitioner/p1",)
    assert query.used == (
        ("identifier", "sys|1,|2"),
        ("_tag:not", "owner"),
        ("date", "ge2024-01-01"),
        ("practitioner", "Practitioner/p1"),
    )


def test_ml_123880_repeated_parameters_are_separate_and_criteria() -> None:
    query = _parse("Organization", "name=a&name=b")
    assert [c.values for c in query.criteria if isinstance(c, Match)] == [("a",), ("b",)]


def test_ml_123880_id_and_last_updated_are_column_criteria() -> None:
    query = _parse("Endpoint", "_id=a,b&_lastUpdated=gt2024-05-17T10:00:00Z")
    assert query.criteria == (
        Column("id", ("a", "b")),
        Column("last_updated", ("gt2024-05-17T10:00:00Z",)),
    )


@pytest.mark.parametrize(
    "value",
    ["2024", "2024-05", "2024-05-17", "ge2024-05-17T10:00", "lt2024-05-17T10:00:00.123+02:00"],
)
def test_ml_123880_date_forms_are_accepted(value: str) -> None:
    assert _parse("PractitionerRole", f"date={value}").criteria


@pytest.mark.parametrize(
    "value", ["24", "2024x", "2024-13", "2024-02-30", "2024-05-17T25:00", "xx2024", "2024-5-1"]
)
def test_ml_123880_malformed_dates_are_400(value: str) -> None:
    for name in ("date", "_lastUpdated"):
        error = _error("PractitionerRole", [(name, value)])
        assert error.status == 400
        assert name in error.message


def test_ml_123880_chains_resolve_the_target_type() -> None:
    (chain,) = _parse("HealthcareService", "organization.active=true").criteria
    assert chain == Chain(
        REGISTRY["HealthcareService"]["organization"],
        "Organization",
        Match(REGISTRY["Organization"]["active"], None, ("true",)),
    )
    (typed,) = _parse("PractitionerRole", "location:Location.address-city=Berlin").criteria
    assert isinstance(typed, Chain)
    assert typed.target_type == "Location"
    (nested,) = _parse("PractitionerRole", "location.organization.name=gematik").criteria
    assert isinstance(nested, Chain)
    assert isinstance(nested.inner, Chain)
    assert nested.inner.target_type == "Organization"


def test_ml_123880_chain_with_a_wrong_type_modifier_is_400() -> None:
    error = _error("PractitionerRole", [("location:Endpoint.name", "x")])
    assert error.status == 400


def test_ml_123880_has_parses_source_reference_and_inner_criterion() -> None:
    (has,) = _parse("Organization", "_has:HealthcareService:organization:name=Apotheke").criteria
    assert has == Has(
        "HealthcareService",
        REGISTRY["HealthcareService"]["organization"],
        Match(REGISTRY["HealthcareService"]["name"], None, ("Apotheke",)),
    )


@pytest.mark.parametrize(
    "name",
    [
        "_has:HealthcareService:organization",  # no inner parameter
        "_has:Patient:organization:name",  # not a directory type
        "_has:HealthcareService:name:name",  # not a reference
        "_has:HealthcareService:location:name",  # refers to Location, not Organization
    ],
)
def test_ml_123880_malformed_has_is_400(name: str) -> None:
    assert _error("Organization", [(name, "x")]).status == 400


def test_ml_123880_fulltext_parameters() -> None:
    assert _parse("HealthcareService", "_text=Berlin").criteria == (FullText("Berlin"),)
    query = _parse("HealthcareService", "_content=a -b&_complexSearch=true")
    assert query.criteria == (FullText("a -b", complex=True),)
    assert ("_complexSearch", "true") in query.used
    assert _error("HealthcareService", [("_text", "  ")]).status == 400
    assert _error("HealthcareService", [("_text:fuzzy", "x")]).status == 400


def test_ml_123880_near_parses_and_limits_distance() -> None:
    assert _parse("Location", "near=50.1|8.6|10|km").criteria == (Near(50.1, 8.6, 10.0),)
    (chain,) = _parse("HealthcareService", "location.near=50.1|8.6|100|km").criteria
    assert isinstance(chain, Chain)
    assert chain.inner == Near(50.1, 8.6, 100.0)
    for value in ("50.1|8.6|100.5|km", "50.1|8.6|0|km", "50.1|8.6|10", "50.1|8.6|10|mi"):
        error = _error("Location", [("near", value)])
        assert error.status == 400
        assert "near" in error.message
    for value in ("a|8.6|10|km", "91|8.6|10|km", "50|181|10|km", "nan|1|1|km", "1|1|nan|km"):
        assert _error("Location", [("near", value)]).status == 400


@pytest.mark.parametrize(
    ("resource_type", "name"),
    [
        ("Organization", "_id:not"),  # was answered as plain _id
        ("Organization", "_lastUpdated:missing"),
        ("Organization", "identifier:of-type"),  # was answered as a plain code match
        ("Organization", "_profile:below"),  # was answered as an exact match
        ("Organization", "name:text"),
        ("Organization", "active:exact"),
        ("HealthcareService", "organization:identifier"),
    ],
)
def test_ml_123880_unsupported_modifiers_are_400(resource_type: str, name: str) -> None:
    error = _error(resource_type, [(name, "x")])
    assert error.status == 400
    assert repr(name) in error.message


def test_ml_123880_missing_must_be_true_or_false() -> None:
    assert _parse("Organization", "name:missing=true").criteria
    assert _error("Organization", [("name:missing", "yes")]).status == 400


@pytest.mark.parametrize(
    ("name", "value"), [("name", "a\x00b"), ("na\x00me", "a"), ("name", "\ud800")]
)
def test_ml_123880_text_no_database_can_hold_is_400(name: str, value: str) -> None:
    """A NUL was a PostgreSQL DataError (500), a lone surrogate a UnicodeEncodeError."""
    assert _error("Organization", [(name, value)]).status == 400


# -- unknown parameters --------------------------------------------------------------------


def test_ml_123880_unknown_parameters_are_ignored_and_not_echoed() -> None:
    query = _parse(
        "Organization",
        "name=a&foo=1&organization.active=true&endpoint.foo=x&_has:Endpoint:organization:foo=1",
    )
    assert query.ignored == (
        "foo",
        "organization.active",
        "endpoint.foo",
        "_has:Endpoint:organization:foo",
    )
    assert query.used == (("name", "a"),)


def test_ml_123880_unknown_parameter_with_strict_handling_is_400_naming_it() -> None:
    error = _error("Organization", [("name", "a"), ("foo", "1")], strict=True)
    assert error.status == 400
    assert error.errcode == IssueType.NOT_SUPPORTED
    assert "'foo'" in error.message
    assert error.requirement == "ML-123880"


def test_ml_123880_format_parameters_are_always_ignored_silently() -> None:
    query = _parse("Organization", "_format=json&_pretty=true&_elements=name", strict=True)
    assert query.criteria == ()
    assert query.ignored == ()


# -- result parameters ---------------------------------------------------------------------


def test_ml_123880_count_defaults_limits_and_rejects() -> None:
    assert _parse("Endpoint", "").count == DEFAULT_COUNT
    assert _parse("Endpoint", "_count=0").count == 0
    assert _parse("Endpoint", "_count=5000").count == MAX_COUNT
    for value in ("-1", "x", "1.5"):
        assert _error("Endpoint", [("_count", value)]).status == 400


def test_ml_123880_sort_keys() -> None:
    sort = _parse("Organization", "_sort=-name,_id,_lastUpdated").sort
    assert [(k.code, k.descending) for k in sort] == [
        ("name", True),
        ("_id", False),
        ("_lastUpdated", False),
    ]
    assert sort[0].param is REGISTRY["Organization"]["name"]
    for value in ("foo", "endpoint", ""):
        assert _error("Organization", [("_sort", value)]).status == 400


def test_ml_123880_include_forms() -> None:
    query = _parse(
        "PractitionerRole",
        "_include=PractitionerRole:practitioner&_include=*"
        "&_include:iterate=Location:organization:Organization&_revinclude=HealthcareService:*",
    )
    specific, star, iterate, reverse = query.includes
    assert specific.params == (REGISTRY["PractitionerRole"]["practitioner"],)
    assert (specific.iterate, specific.reverse) == (False, False)
    assert (star.source_type, star.params) == (None, ())
    assert (iterate.iterate, iterate.target_type) == (True, "Organization")
    assert reverse.reverse
    assert {p.code for p in reverse.params} >= {"organization", "location", "endpoint"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("_include", "PractitionerRole"),
        ("_include", "Patient:organization"),
        ("_include", "PractitionerRole:name"),
        ("_include", "PractitionerRole:practitioner:Patient"),
        ("_include:deep", "PractitionerRole:practitioner"),
        ("_revinclude", "a:b:c:d"),
    ],
)
def test_ml_123880_malformed_include_is_400(name: str, value: str) -> None:
    assert _error("PractitionerRole", [(name, value)]).status == 400


def test_ml_123880_summary_and_total() -> None:
    assert _parse("Endpoint", "_summary=count").summary_count
    assert _parse("Endpoint", "_total=accurate").total == "accurate"
    assert _error("Endpoint", [("_summary", "text")]).status == 400
    assert _error("Endpoint", [("_total", "all")]).status == 400


# -- cursors -------------------------------------------------------------------------------

_sort_values = st.one_of(st.text(), st.integers(min_value=-(2**62), max_value=2**62))


@given(st.lists(_sort_values, min_size=1, max_size=5), st.integers(min_value=0, max_value=2**62))
def test_cursor_encode_decode_round_trip(after: list[str | int], max_rid: int) -> None:
    cursor = Cursor(tuple(after), max_rid)
    encoded = cursor.encode()
    assert encoded.isascii()
    assert all(c.isalnum() or c in "-_" for c in encoded)
    assert Cursor.decode(encoded) == cursor
    query = parse_search("Endpoint", [("_cursor", encoded)])
    assert query.cursor == cursor
    assert query.used == ()


def _b64(raw: str) -> str:
    import base64

    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@given(st.one_of(st.text(), st.text(alphabet="ABCDEFabcdef0123456789-_=")))
@example(_b64('{"a":[1],"m":1e400}'))  # was OverflowError
@example(_b64('{"a":"abc","m":1}'))  # a string is not a list of sort values
@example(_b64('{"a":[{"x":1}],"m":1}'))
@example(_b64('{"a":[],"m":1}'))
@example(_b64('{"a":[1],"m":true}'))
@example(_b64("[1]"))
@example("\x00")
def test_cursor_decode_accepts_only_cursors(text: str) -> None:
    cursor = _outcome(Cursor.decode, text)
    if isinstance(cursor, TimkitError):
        assert cursor.status == 400
        assert "_cursor" in cursor.message
    else:
        assert cursor.after
        assert all(isinstance(v, str | int) for v in cursor.after)
        assert isinstance(cursor.max_rid, int)


# -- parse_search never fails but with a 400 ----------------------------------------------

_CODES = sorted({code for params in REGISTRY.values() for code in params})
_NAME_PARTS = st.one_of(
    st.sampled_from(
        [
            *_CODES,
            *RESOURCE_TYPES,
            "_has",
            "_text",
            "_content",
            "_id",
            "_lastUpdated",
            "_count",
            "_sort",
            "_include",
            "_revinclude",
            "_summary",
            "_total",
            "_cursor",
            "_complexSearch",
            "not",
            "missing",
            "exact",
            "contains",
            "text",
            "iterate",
        ]
    ),
    st.text(max_size=8),
)
_NAMES = st.one_of(
    st.text(),
    st.lists(st.tuples(_NAME_PARTS, st.sampled_from([":", ".", ""])), min_size=1, max_size=5).map(
        lambda parts: "".join(a + b for a, b in parts)
    ),
)
_VALUES = st.one_of(
    st.text(),
    st.sampled_from(
        [
            "",
            "*",
            "true",
            "count",
            "accurate",
            "ge2024-01-01",
            "2024-02-30",
            "50|8|10|km",
            "1e400|1|1|km",
            "Organization:endpoint",
            "PractitionerRole:*:Location",
            "-name,_id",
            "a\\,b,c\\",
            "sys|code",
            "|",
            '"a" -b | c*',
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(RESOURCE_TYPES),
    st.lists(st.tuples(_NAMES, _VALUES), max_size=4),
    st.booleans(),
)
def test_ml_123880_parse_search_fails_only_with_400(
    resource_type: str, pairs: list[tuple[str, str]], strict: bool
) -> None:
    query = _outcome(lambda: parse_search(resource_type, pairs, strict=strict))
    if isinstance(query, TimkitError):
        assert query.status == 400
    else:
        assert query.resource_type == resource_type
        assert len(query.used) + len(query.ignored) <= len(pairs)


# -- full-text queries run on both engines ------------------------------------------------

_QUERY_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=' "-|,+*~()^:!&\\aäbßz0123456789Ü.'),
)
_DOCUMENT = "praxis dr mustermann 1 2arvtst ap000052 frankfurt am main strasse"


@pytest.fixture(scope="module")
def sqlite_fts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    directory = open_directory(f"sqlite:///{tmp_path_factory.mktemp('fts')}/fts.db")
    with directory.db.write() as tx:
        tx.execute("INSERT INTO fts (rowid, doc) VALUES (1, ?)", (_DOCUMENT,))
    yield directory.db
    directory.db.close()


@pytest.fixture(scope="module")
def postgres_fts(postgres: PostgresServer) -> Iterator[Database]:
    directory = open_directory(postgres.create_database(f"fts_{next(_numbers)}"))
    with directory.db.write() as tx:
        tx.execute("INSERT INTO fts (rid, doc) VALUES (1, to_tsvector('simple', ?))", (_DOCUMENT,))
    yield directory.db
    directory.db.close()


def _sqlite_matches(db: Database, expression: str) -> bool:
    with db.read() as cur:
        rows = cur.execute("SELECT rowid FROM fts WHERE fts MATCH ?", (expression,)).fetchall()
    return bool(rows)


def _postgres_matches(db: Database, expression: str) -> bool:
    with db.read() as cur:
        rows = cur.execute(
            "SELECT rid FROM fts WHERE doc @@ to_tsquery('simple', ?)", (expression,)
        ).fetchall()
    return bool(rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_QUERY_TEXT, st.booleans())
@example('"unclosed', True)
@example("-only -negative", True)
@example("a | , | b", True)
@example("~~**", False)
@example("foo_bar", False)
def test_ml_123880_any_text_is_a_400_or_a_valid_fts5_query(
    sqlite_fts: Database, text: str, complex_syntax: bool
) -> None:
    expression = _outcome(lambda: fts5_query(text, complex_syntax=complex_syntax))
    if isinstance(expression, TimkitError):
        assert expression.status == 400
        return
    _sqlite_matches(sqlite_fts, expression)  # raises if FTS5 rejects the expression


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_QUERY_TEXT, st.booleans())
@example('"unclosed', True)
@example("-a & b | !c", True)
@example("a:b (c) d:*", False)
def test_ml_123880_any_text_is_a_400_or_a_valid_tsquery(
    postgres_fts: Database, text: str, complex_syntax: bool
) -> None:
    expression = _outcome(lambda: tsquery(text, complex_syntax=complex_syntax))
    if isinstance(expression, TimkitError):
        assert expression.status == 400
        return
    _postgres_matches(postgres_fts, expression)


_WORDS_OF_DOCUMENT = st.lists(st.sampled_from(_DOCUMENT.split()), min_size=1, max_size=4)


@settings(max_examples=50, deadline=None)
@given(_WORDS_OF_DOCUMENT, st.sampled_from([" ", "-", ",", " , ", "+"]), st.booleans())
def test_ml_123880_simple_query_of_indexed_words_and_a_typed_ahead_last_word_matches(
    sqlite_fts: Database, words: list[str], separator: str, cut: bool
) -> None:
    """Words of a document, the last one possibly cut short, find it in simple mode."""
    text = separator.join([*words[:-1], _cut(words[-1]) if cut else words[-1]]).upper()
    assert _sqlite_matches(sqlite_fts, fts5_query(text, complex_syntax=False))


def _cut(word: str) -> str:
    return word[: max(1, len(word) // 2)]


@settings(max_examples=30, deadline=None)
@given(_WORDS_OF_DOCUMENT)
def test_ml_123880_simple_query_words_before_the_last_are_whole_words(
    sqlite_fts: Database, words: list[str]
) -> None:
    """Only the last word is a prefix: a cut-short earlier word does not match."""
    cut = [w for w in _DOCUMENT.split() if len(w) > 3][len(words) % 3]
    text = " ".join([_cut(cut), *words])
    assert not _sqlite_matches(sqlite_fts, fts5_query(text, complex_syntax=False))


@settings(max_examples=10, deadline=None)
@given(_WORDS_OF_DOCUMENT, st.booleans())
def test_ml_123880_simple_query_of_indexed_words_matches_on_postgres(
    postgres_fts: Database, words: list[str], cut: bool
) -> None:
    text = " ".join([*words[:-1], _cut(words[-1]) if cut else words[-1]])
    assert _postgres_matches(postgres_fts, tsquery(text, complex_syntax=False))
    cut_first = " ".join([_cut("mustermann"), *words])
    assert not _postgres_matches(postgres_fts, tsquery(cut_first, complex_syntax=False))


def test_ml_123880_text_words_fold_and_split_like_the_index() -> None:
    assert text_words("Müller-Lüdenscheidt, Dr. med.") == ["muller", "ludenscheidt", "dr", "med"]
    assert text_words("betrieb@gematik.de 1-2arvtst_x") == [
        "betrieb",
        "gematik",
        "de",
        "1",
        "2arvtst",
        "x",
    ]


@pytest.mark.parametrize(
    ("text", "fts5", "ts"),
    [
        # every word must occur; only the last may be the start of a word (type-ahead)
        ("Praxis Sonnensch", '"praxis" AND "sonnensch"*', "praxis & sonnensch:*"),
        ("Karl-Marx,Str", '"karl" AND "marx" AND "str"*', "karl & marx & str:*"),
    ],
)
def test_ml_123880_simple_syntax_translation(text: str, fts5: str, ts: str) -> None:
    assert fts5_query(text, complex_syntax=False) == fts5
    assert tsquery(text, complex_syntax=False) == ts


@pytest.mark.parametrize(
    ("text", "fts5", "ts"),
    [
        ('"Franz Wallraff"', '("franz wallraff")', "((franz <-> wallraff))"),
        ('"Aachen"+Wallraf*', '("aachen" AND "wallraf"*)', "((aachen) & (wallraf:*))"),
        # without a quotation mark plain words are prefixes (the HOWTO's HAPI examples)
        ("a | b,c", '("a"*) OR ("b"*) OR ("c"*)', "((a:*)) | ((b:*)) | ((c:*))"),
        (
            "Niedersachsen -Hannover",
            '(("niedersachsen"*) NOT "hannover"*)',
            "((niedersachsen:*) & !(hannover:*))",
        ),
        (
            "Franz+Wallraf+Str",
            '("franz"* AND "wallraf"* AND "str"*)',
            "((franz:*) & (wallraf:*) & (str:*))",
        ),
        # … with one, only a trailing * makes a prefix
        ('"Aachen"+Wallraf', '("aachen" AND "wallraf")', "((aachen) & (wallraf))"),
        # A negated phrase was read as a positive one (the "-" was lost before the quote).
        (
            'Berlin -"Bad Hannover"',
            '(("berlin") NOT "bad hannover")',
            "((berlin) & !(bad <-> hannover))",
        ),
        ("Coppenbruegge~1", '("coppenbruegge"*)', "((coppenbruegge:*))"),
        ('"Wallraf*"', '("wallraf")', "((wallraf))"),
    ],
)
def test_ml_123880_complex_syntax_translation(text: str, fts5: str, ts: str) -> None:
    assert fts5_query(text, complex_syntax=True) == fts5
    assert tsquery(text, complex_syntax=True) == ts


@pytest.mark.parametrize("text", ["-only", "...", '""', "| ,"])
def test_ml_123880_fulltext_without_positive_word_is_400(text: str) -> None:
    with pytest.raises(TimkitError) as caught:
        fts5_query(text, complex_syntax=True)
    assert caught.value.status == 400


def test_every_resource_type_has_the_common_parameters() -> None:
    for resource_type in RESOURCE_TYPES:
        assert {"_tag", "_profile"} <= set(REGISTRY[resource_type])


# -- nesting limit (issue 14: _has nested 20 deep was a 500) -------------------------------


def _nested_has(levels: int) -> str:
    """``_has:Organization:partof:`` ``levels`` times, then ``name``: Organization → itself."""
    return "_has:Organization:partof:" * levels + "name"


def test_ml_123880_has_and_chains_nested_too_deep_are_a_400_naming_the_limit() -> None:
    assert isinstance(
        parse_search("Organization", [(_nested_has(MAX_NESTING), "x")]).criteria[0], Has
    )
    for name in (
        _nested_has(MAX_NESTING + 1),
        _nested_has(20),
        _nested_has(500),
        "partof." * (MAX_NESTING + 1) + "name",
        "partof." * 50 + "name",
        "_has:Organization:partof:" * 3 + "partof." * 3 + "name",
    ):
        error = _error("Organization", [(name, "x")])
        assert error.status == 400
        assert error.errcode == IssueType.TOO_COSTLY
        assert f"the limit is {MAX_NESTING}" in error.message
        assert error.requirement == "ML-123880"
