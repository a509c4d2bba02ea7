"""RegService-OpenID-Tokens are exchanged once (storage/used_tokens.py), on both engines."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from timkit.core.db import Database
from timkit.fhirproxy.service import open_database
from timkit.fhirproxy.storage.used_tokens import UsedTokens, token_digest

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"


@pytest.fixture
def db(proxy_db_url: str) -> Iterator[Database]:
    """The proxy database (migrated) on each engine."""
    database = open_database(proxy_db_url)
    yield database
    database.close()


def test_ml_123873_a_token_is_claimed_once_until_it_expires(db: Database) -> None:
    used = UsedTokens(db)
    assert used.claim(TOKEN, expires=2000.0, now=1000.0)
    assert not used.claim(TOKEN, expires=2000.0, now=1500.0)
    # Another instance on the same database sees the claim.
    assert not UsedTokens(db).claim(TOKEN, expires=2000.0, now=1999.0)
    # Rows past their expiry are dropped (the token itself is refused as expired by then).
    assert used.claim(TOKEN, expires=3000.0, now=2001.0)


def test_ml_123873_a_re_encoded_signature_is_the_same_token(db: Database) -> None:
    used = UsedTokens(db)
    other_signature = TOKEN.rpartition(".")[0] + ".b3RoZXIgc2lnbmF0dXJl"
    assert token_digest(other_signature) == token_digest(TOKEN)
    assert used.claim(TOKEN, expires=2000.0, now=1000.0)
    assert not used.claim(other_signature, expires=2000.0, now=1000.0)


def test_ml_123873_concurrent_claims_have_one_winner(db: Database) -> None:
    used = UsedTokens(db)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        results.append(used.claim(TOKEN, expires=2000.0, now=1000.0))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
