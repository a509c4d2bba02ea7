"""The RD as a TI-M provider: token caching and error mapping against a real FHIR-Proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.registration.provisioning.stack import ACTIVE_TID, RdStack, database_url, start_rd

from timkit.core.errors import TemporaryUpstreamError, TimkitError
from timkit.registration.config import DirectorySettings
from timkit.registration.directory_client import DirectoryClient, Ownership, read_secret


@pytest.fixture
async def rd(tmp_path: Path) -> AsyncIterator[RdStack]:
    """RD + FHIR stack (SQLite)."""
    async for stack in start_rd(tmp_path, database_url("sqlite", tmp_path, None)):
        yield stack


async def test_provider_token_is_cached_until_shortly_before_expiry(rd: RdStack) -> None:
    now = [1_000_000.0]
    client = DirectoryClient(rd.ctx.config.directory, clock=lambda: now[0])
    try:
        first = await client.provider_token()
        assert await client.provider_token() == first
        now[0] += 10_000  # past expiry: a new one
        assert await client.provider_token() != first
    finally:
        await client.aclose()


async def test_domains_roundtrip_and_ownership(rd: RdStack) -> None:
    directory = rd.ctx.directory
    assert await directory.domain_owner("neu.example.de") is Ownership.FREE
    added = await directory.add_domain("neu.example.de", ACTIVE_TID)
    assert (added.domain, added.telematik_id, added.tim_anbieter) == (
        "neu.example.de",
        ACTIVE_TID,
        "rd-provider",
    )
    assert await directory.domain_owner("neu.example.de") is Ownership.OURS
    assert [d.domain for d in await directory.get_domains()] == ["neu.example.de"]
    with pytest.raises(TimkitError) as err:
        await directory.add_domain("neu.example.de", ACTIVE_TID)
    assert err.value.status == 409
    assert "already registered" in err.value.message
    rd.fhir.add_provider("provider-b", "B")
    rd.fhir.add_domain("fremd.example.de", "provider-b", ACTIVE_TID)
    assert await directory.domain_owner("fremd.example.de") is Ownership.OTHER
    assert await directory.delete_domain("neu.example.de") is True
    assert await directory.delete_domain("neu.example.de") is False
    assert await directory.get_domain("neu.example.de") is None


async def test_refusals_carry_the_directorys_status_and_message(rd: RdStack) -> None:
    with pytest.raises(TimkitError) as err:
        await rd.ctx.directory.add_domain("x.example.de", "1-unknown")
    assert err.value.status == 400
    assert "telematikID" in err.value.message


async def test_unreachable_is_a_retriable_503(rd: RdStack) -> None:
    settings = rd.ctx.config.directory.model_copy(update={"base_url": "http://127.0.0.1:9"})
    client = DirectoryClient(settings)
    try:
        with pytest.raises(TemporaryUpstreamError) as err:
            await client.get_domains()
        assert err.value.status == 503
    finally:
        await client.aclose()


async def test_wrong_credentials_are_named(rd: RdStack) -> None:
    settings = rd.ctx.config.directory.model_copy(update={"client_secret": "wrong"})
    client = DirectoryClient(settings)
    try:
        with pytest.raises(TimkitError) as err:
            await client.get_domains()
        assert err.value.status == 401
        assert "/token" in err.value.message
    finally:
        await client.aclose()


def test_secret_file_json_or_bare(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"client_id": "x", "client_secret": "s1"}', "utf-8")
    (tmp_path / "b").write_text("s2\n", "utf-8")
    assert read_secret(DirectorySettings(client_secret_file=tmp_path / "a.json")) == "s1"
    assert read_secret(DirectorySettings(client_secret_file=tmp_path / "b")) == "s2"
