"""Request targets split before decoding, as Synapse and the FHIR store read them."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from timkit.core.request_target import (
    UnparsableRequest,
    parse_target,
    single_header,
)


def test_segments_are_decoded_once_after_splitting() -> None:
    target = parse_target("/_matrix/federation/v2/invite/!r:a.test/$abc%2F%2Fdef?x=%2F")
    assert target.segments == (
        "_matrix",
        "federation",
        "v2",
        "invite",
        "!r:a.test",
        "$abc//def",
    )
    assert target.raw_segments[-1] == "$abc%2F%2Fdef"
    assert target.query == "x=%2F"
    assert target.raw_path == "/_matrix/federation/v2/invite/!r:a.test/$abc%2F%2Fdef"


def test_encoded_slash_never_splits_a_route() -> None:
    target = parse_target("/_matrix/federation/v2/invite/!r:a.test/$abc%2Fdef")
    assert target.match("/_matrix/federation/v{version}/invite/{room_id}/{event_id}") is None
    found = target.match("/_matrix/federation/{version}/invite/{room_id}/{event_id}")
    assert found == {"version": "v2", "room_id": "!r:a.test", "event_id": "$abc/def"}


def test_double_encoding_is_decoded_only_once() -> None:
    assert parse_target("/a/%252F").segments == ("a", "%2F")


def test_literal_segments_match_every_spelling() -> None:
    target = parse_target("/_matrix/client/v3/rooms/%21r%3Aa.test/invit%65")
    assert target.match("/_matrix/client/{version}/rooms/{room_id}/invite") == {
        "version": "v3",
        "room_id": "!r:a.test",
    }


def test_trailing_slash_is_reported_not_matched_differently() -> None:
    target = parse_target("/_matrix/client/v3/createRoom/")
    assert target.trailing_slash
    assert target.match("/_matrix/client/{version}/createRoom") == {"version": "v3"}
    assert parse_target("/").segments == ()
    assert not parse_target("/").trailing_slash


def test_has_prefix() -> None:
    target = parse_target("/_matrix/%63lient/v3/sync")
    assert target.has_prefix("_matrix", "client")
    assert not target.has_prefix("_matrix", "federation")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("http://evil.test/_matrix/client/v3/createRoom", "must be a path"),
        ("*", "must be a path"),
        ("evil.test:443", "must be a path"),
        ("/a b", "outside visible ASCII"),
        ("/a\x00b", "outside visible ASCII"),
        ("/ä", "outside visible ASCII"),
        ("/a#b", "fragment"),
        ("/a/%zz", "malformed percent escape"),
        ("/a/%2", "malformed percent escape"),
        ("/a?b=%G0", "malformed percent escape"),
        ("/a/%01", "control character"),
        ("/a/%7F", "control character"),
        ("/a/%0a", "control character"),
        ("/a/%C3%28", "not UTF-8"),
        ("/a/../createRoom", "dot segment"),
        ("/a/./b", "dot segment"),
        ("/a/%2e%2E/b", "dot segment"),
        ("/a/%2E", "dot segment"),
        ("/a//b", "empty path segment"),
        ("//a", "empty path segment"),
        ("/a//", "empty path segment"),
    ],
)
def test_ambiguous_targets_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(UnparsableRequest, match=reason):
        parse_target(raw)


def test_refusal_quotes_at_most_100_characters() -> None:
    with pytest.raises(UnparsableRequest) as caught:
        parse_target("/" + "a" * 5000 + "/%zz")
    assert len(str(caught.value)) < 200


def test_route_patterns_must_be_paths() -> None:
    with pytest.raises(ValueError, match="starts with"):
        parse_target("/a").match("a")


def test_single_header_refuses_duplicates() -> None:
    headers = CIMultiDict([("Authorization", "X-Matrix origin=a"), ("authorization", "b")])
    with pytest.raises(UnparsableRequest, match="given 2 times"):
        single_header(CIMultiDictProxy(headers), "Authorization")
    assert single_header(CIMultiDict([("Authorization", "x")]), "authorization") == "x"
    assert single_header(CIMultiDict(), "Authorization") is None
