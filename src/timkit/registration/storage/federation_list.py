"""The last verified federation list, byte-for-byte (table ``federation_list``, migration 2).

One row (``id = 1``): the list's ``version``, the compact JWS exactly as the
VZD-FHIR-Directory sent it, and ``refreshed_ms``, when the directory last confirmed a list
(a new one, or that ours is current). :func:`save` never replaces a list by one with a
version that is not higher (ML-123891), even when two writers race, so ``version`` is the
highest version ever stored: the floor below which no list is accepted again.
"""

from __future__ import annotations

from dataclasses import dataclass

from timkit.core.db import Cursor


@dataclass(frozen=True)
class StoredList:
    """The held federation list."""

    version: int
    jws: bytes
    refreshed_ms: int


def load(cur: Cursor) -> StoredList | None:
    """The held list, or None before the first successful pull."""
    row = cur.execute("SELECT version, jws, refreshed_ms FROM federation_list WHERE id = 1")
    found = row.fetchone()
    return StoredList(int(found[0]), bytes(found[1]), int(found[2])) if found else None


def save(
    tx: Cursor,
    version: int,
    jws: bytes,
    refreshed_ms: int,
    received: str,
    *,
    replace_equal: bool = False,
) -> bool:
    """Hold ``jws`` if its ``version`` is higher than the held one; whether it was stored.

    Args:
        replace_equal: also replace a list of the same version (the caller found the stored
            one no longer verifying); never one of a higher version.
    """
    result = tx.execute(
        "INSERT INTO federation_list (id, version, jws, refreshed_ms, received)"
        " VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version,"
        " jws = excluded.jws, refreshed_ms = excluded.refreshed_ms, received = excluded.received"
        " WHERE federation_list.version < excluded.version"
        " OR (federation_list.version = excluded.version AND ? = 1)",
        (version, jws, refreshed_ms, received, int(replace_equal)),
    )
    return bool(result.rowcount)


def touch(tx: Cursor, version: int, refreshed_ms: int) -> None:
    """Record that the directory confirmed ``version`` as current at ``refreshed_ms``."""
    tx.execute(
        "UPDATE federation_list SET refreshed_ms = ? WHERE id = 1 AND version = ?",
        (refreshed_ms, version),
    )
