"""``matrix.routes_file``: the FHIR-Proxy finds homeservers that join a running federation."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from timkit.core.names import NameTable
from timkit.fhirproxy.auth.matrix_openid import MatrixResolver, Target, parse_server_name
from timkit.fhirproxy.config import MatrixConfig


async def test_routes_file_is_followed_as_it_changes(tmp_path: Path) -> None:
    names = NameTable(tmp_path / "names.json")
    config = MatrixConfig(
        routes={"static.tim.test": "127.0.0.1:1000", "both.tim.test": "127.0.0.1:1001"},
        routes_file=names.path,
    )
    async with aiohttp.ClientSession() as session:
        resolver = MatrixResolver(config, session)
        names.set("new.tim.test", "127.0.0.1:2000")
        names.set("both.tim.test", "127.0.0.1:2001")
        new = await resolver.resolve(parse_server_name("new.tim.test"))
        assert new == Target("127.0.0.1", 2000, "new.tim.test", "new.tim.test")
        both = await resolver.resolve(parse_server_name("both.tim.test"))
        assert both.port == 2001
        static = await resolver.resolve(parse_server_name("static.tim.test"))
        assert static.port == 1000
        names.remove("both.tim.test")
        assert (await resolver.resolve(parse_server_name("both.tim.test"))).port == 1001


def test_bad_static_route_is_a_config_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be 'host:port'"):
        MatrixConfig(routes={"x.tim.test": "127.0.0.1"})
