"""The Freigabeliste: contact settings per owner (table ``contacts``, migration 1).

A row ``(owner, contact)`` says that ``contact`` may invite ``owner`` between ``start`` and
``end`` (Unix seconds, both inclusive; ``end`` None = open). :func:`allows` is stage 2 of the
permission check (seed 002 §3.5.2.2): an active entry of the inviting user means the invite
MUST be let through; without one, stage 3 decides.

Functions take a cursor of :meth:`Database.read` or :meth:`Database.write`; callers own the
transaction. User ids are compared as stored (callers pass canonical ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from timkit.core.db import Cursor

_COLUMNS = "owner, contact, display_name, invite_start, invite_end, created, updated"


@dataclass(frozen=True)
class ContactSetting:
    """One contact setting of ``owner``.

    Attributes:
        owner: the user whose Freigabeliste holds the entry (the one being invited).
        mxid: the contact, who may invite ``owner`` inside the window.
        display_name: the owner's name for the contact.
        start: first second of the window (Unix seconds).
        end: last second of the window, None for no end.
        created: when the entry was created (Unix seconds).
        updated: when it was last changed (Unix seconds).
    """

    owner: str
    mxid: str
    display_name: str
    start: int
    end: int | None
    created: int
    updated: int

    def active(self, now_s: int) -> bool:
        """Whether the window covers ``now_s``."""
        return self.start <= now_s and (self.end is None or now_s <= self.end)


def _row(row: Sequence[Any]) -> ContactSetting:
    return ContactSetting(
        owner=row[0],
        mxid=row[1],
        display_name=row[2],
        start=int(row[3]),
        end=None if row[4] is None else int(row[4]),
        created=int(row[5]),
        updated=int(row[6]),
    )


def list_for(cur: Cursor, owner: str) -> list[ContactSetting]:
    """All settings of ``owner``, ordered by contact id."""
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM contacts WHERE owner = ? ORDER BY contact",  # noqa: S608
        (owner,),
    ).fetchall()
    return [_row(r) for r in rows]


def count(cur: Cursor, owner: str) -> int:
    """How many settings ``owner`` holds."""
    row = cur.execute("SELECT COUNT(*) FROM contacts WHERE owner = ?", (owner,)).fetchone()
    return int(row[0])


def get(cur: Cursor, owner: str, mxid: str) -> ContactSetting | None:
    """``owner``'s setting for ``mxid``, or None."""
    row = cur.execute(
        f"SELECT {_COLUMNS} FROM contacts WHERE owner = ? AND contact = ?",  # noqa: S608
        (owner, mxid),
    ).fetchone()
    return None if row is None else _row(row)


def insert(
    cur: Cursor,
    owner: str,
    mxid: str,
    display_name: str,
    start: int,
    end: int | None,
    now_s: int,
) -> bool:
    """Add ``owner``'s setting for ``mxid``; False (nothing written) when one exists."""
    cur.execute(
        "INSERT INTO contacts"
        " (owner, contact, display_name, invite_start, invite_end, created, updated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, contact) DO NOTHING",
        (owner, mxid, display_name, start, end, now_s, now_s),
    )
    return cur.rowcount == 1


def update(
    cur: Cursor,
    owner: str,
    mxid: str,
    display_name: str,
    start: int,
    end: int | None,
    now_s: int,
) -> bool:
    """Replace name and window of ``owner``'s setting for ``mxid``; False when there is none."""
    cur.execute(
        "UPDATE contacts SET display_name = ?, invite_start = ?, invite_end = ?, updated = ?"
        " WHERE owner = ? AND contact = ?",
        (display_name, start, end, now_s, owner, mxid),
    )
    return cur.rowcount == 1


def delete(cur: Cursor, owner: str, mxid: str) -> bool:
    """Remove ``owner``'s setting for ``mxid``; False when there was none."""
    cur.execute("DELETE FROM contacts WHERE owner = ? AND contact = ?", (owner, mxid))
    return cur.rowcount == 1


def allows(cur: Cursor, owner: str, inviter: str, now_s: int) -> bool:
    """Stage 2: whether ``owner`` holds an active setting for ``inviter`` at ``now_s``.

    Active means ``start <= now_s`` and (no ``end`` or ``now_s <= end``).
    """
    row = cur.execute(
        "SELECT 1 FROM contacts WHERE owner = ? AND contact = ? AND invite_start <= ?"
        " AND (invite_end IS NULL OR invite_end >= ?)",
        (owner, inviter, now_s, now_s),
    ).fetchone()
    return row is not None
