"""The advertised Matrix versions, capped at the TI-M version's Matrix version."""

from __future__ import annotations

import orjson
import pytest

from timkit.core.errors import TimkitError
from timkit.proxy.inbound.versions import capped, parse_version


def test_tim_11_af_005_nothing_above_v1_3_is_advertised() -> None:
    synapse = {
        "versions": ["r0.0.1", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.10", "v1.12"],
        "unstable_features": {"org.matrix.msc3916.stable": True},
    }
    answer = orjson.loads(capped(orjson.dumps(synapse), (1, 3)))
    assert answer == {
        "versions": ["r0.0.1", "r0.6.1", "v1.1", "v1.2", "v1.3"],
        "unstable_features": {"org.matrix.msc3916.stable": True},
    }


def test_versions_compare_as_numbers_not_strings() -> None:
    answer = orjson.loads(capped(b'{"versions": ["v1.2", "v1.10", "v2.0"]}', (1, 11)))
    assert answer["versions"] == ["v1.2", "v1.10"]


@pytest.mark.parametrize("entry", ["v1.3.1", "V1.3", "v01.3", "1.3", "r1.0.0", "v1.٣", 13, None])
def test_entries_that_cannot_be_compared_are_dropped(entry: object) -> None:
    answer = orjson.loads(capped(orjson.dumps({"versions": ["v1.1", entry]}), (1, 3)))
    assert answer["versions"] == ["v1.1"]


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"versions": "v1.1"}', b'{"unstable_features": {}}']
)
def test_an_unreadable_answer_is_a_502_not_relayed(body: bytes) -> None:
    with pytest.raises(TimkitError) as refused:
        capped(body, (1, 3))
    assert refused.value.status == 502
    assert "00.05" in (refused.value.requirement or "")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("v1.3", (1, 3)), ("v1.11", (1, 11)), ("v0.0", (0, 0)), ("v1", None), ("v1.03", None)],
)
def test_parse_version(text: str, parsed: tuple[int, int] | None) -> None:
    assert parse_version(text) == parsed
