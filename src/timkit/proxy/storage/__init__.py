"""The Messenger-Proxy's own state (component ``proxy``, numbered migrations, SQLite or PG).

* :mod:`.contacts`: the Freigabeliste, contact settings per owner (stage 2 of the permission
  check, seed 002 §3.5.2.2; I_TiMessengerContactManagement 1.0.2);
* :mod:`.direct_rooms`: the 1:1 rooms the proxy has seen created, so it can refuse inviting
  a third user into one.

Open with :func:`open_database`, which applies the migrations.
"""

from __future__ import annotations

from timkit.core.db import Database
from timkit.proxy.storage.migrations import COMPONENT, MIGRATIONS


def open_database(url: str, *, pool_size: int = 8) -> Database:
    """Open the proxy database at ``url`` (``sqlite:///…`` or ``postgresql://…``), migrated.

    Raises:
        ConfigError: the URL names no supported engine, or the migrations are inconsistent.
    """
    db = Database.open(url, pool_size=pool_size)
    try:
        db.migrate(COMPONENT, MIGRATIONS)
    except BaseException:
        db.close()
        raise
    return db


__all__ = ["COMPONENT", "MIGRATIONS", "open_database"]
