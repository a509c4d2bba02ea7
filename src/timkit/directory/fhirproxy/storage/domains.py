"""TI-M domains registered by providers (``/tim-provider-services/federation``)."""

from __future__ import annotations

from timkit.core.db import Database


class DomainStore:
    """The ``domains`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def contains(self, domain: str) -> bool:
        """Whether ``domain`` is a registered TI-M domain (so in the federation list)."""
        with self.db.read() as cur:
            row = cur.execute("SELECT 1 FROM domains WHERE domain = ?", (domain.lower(),))
            return row.fetchone() is not None

    def provider_has_telematik_id(self, client_id: str, telematik_id: str) -> bool:
        """Whether provider ``client_id`` registered a domain for ``telematik_id``."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT 1 FROM domains WHERE client_id = ? AND telematik_id = ?",
                (client_id, telematik_id),
            )
            return row.fetchone() is not None
