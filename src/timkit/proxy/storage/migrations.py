"""Numbered schema migrations of the Messenger-Proxy (component ``proxy``).

1. ``contacts`` (the Freigabeliste) and ``direct_rooms`` (1:1 rooms).

All times are integer Unix seconds (``BIGINT``): the invite window because the API speaks
epoch seconds, ``created``/``updated`` for uniformity. User ids are stored in their canonical
form (server name lower-cased, see :func:`timkit.proxy.contacts.handlers.canonical_mxid`).
"""

from __future__ import annotations

from timkit.core.db import Migration

COMPONENT = "proxy"
"""The component name under which :meth:`Database.migrate` records these migrations."""

# Migration 1:
# * ``contacts``: one invite setting per (owner, contact): ``contact`` may invite ``owner``
#   while ``invite_start <= now`` and (``invite_end`` is NULL or ``now <= invite_end``);
# * ``direct_rooms``: rooms created as 1:1 chats (``is_direct``), with their two members.
_SCHEMA = """
CREATE TABLE contacts (
    owner TEXT NOT NULL,
    contact TEXT NOT NULL,
    display_name TEXT NOT NULL,
    invite_start BIGINT NOT NULL,
    invite_end BIGINT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (owner, contact)
);
CREATE TABLE direct_rooms (
    room_id TEXT PRIMARY KEY,
    user_a TEXT NOT NULL,
    user_b TEXT NOT NULL,
    created BIGINT NOT NULL
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "Freigabeliste (contact settings per owner), 1:1 rooms",
        {"sqlite": _SCHEMA, "postgresql": _SCHEMA},
    ),
)
