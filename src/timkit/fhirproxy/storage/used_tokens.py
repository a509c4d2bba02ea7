"""RegService-OpenID-Tokens already exchanged at ``/owner-authenticate`` (single use).

A RegService-OpenID-Token buys one owner-accesstoken: :meth:`UsedTokens.claim` records it
until its ``exp`` in the proxy's database (table ``used_regservice_tokens``, migration 4),
so every FHIR-Proxy instance sharing the database refuses a second exchange. The key is the
SHA-256 of the token's signed part (``header.payload``), not of the whole token: an ECDSA
signature can be re-encoded (``s`` → ``n - s``) into another valid token string with the same
claims, which must not count as a new token. Two tokens with the same header and claims are
the same assertion and are exchanged once.

The insert is atomic (the digest is the primary key, ``ON CONFLICT DO NOTHING``), so two
concurrent exchanges of one token cannot both win. Rows past their ``exp`` are deleted on the
way.
"""

from __future__ import annotations

import hashlib
import time

from timkit.core.db import Database


def token_digest(token: str) -> str:
    """SHA-256 (hex) of the compact JWS's signed part ``header.payload``."""
    signed, _, _ = token.rpartition(".")
    return hashlib.sha256(signed.encode("ascii", "replace")).hexdigest()


class UsedTokens:
    """The ``used_regservice_tokens`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, token: str, expires: float, now: float | None = None) -> bool:
        """Record ``token`` as used until ``expires`` (epoch seconds).

        Returns:
            True when this call recorded it (first use), False when it was used before.
        """
        moment = time.time() if now is None else now
        with self.db.write() as tx:
            tx.execute("DELETE FROM used_regservice_tokens WHERE expires < ?", (moment,))
            cursor = tx.execute(
                "INSERT INTO used_regservice_tokens (digest, expires) VALUES (?, ?)"
                " ON CONFLICT (digest) DO NOTHING",
                (token_digest(token), float(expires)),
            )
            return bool(cursor.rowcount == 1)
