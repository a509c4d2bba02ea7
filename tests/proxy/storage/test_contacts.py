"""The Freigabeliste table and the 1:1-room records, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from timkit.core.db import Database
from timkit.proxy.storage import COMPONENT, MIGRATIONS, contacts, direct_rooms
from timkit.proxy.storage.contacts import ContactSetting

ALICE = "@alice:praxis.tim.test"
BOB = "@bob:klinik.tim.test"
CAROL = "@carol:klinik.tim.test"
NOW = 1_700_000_000


def _add(db: Database, owner: str, mxid: str, start: int, end: int | None, name: str = "x") -> bool:
    with db.write() as tx:
        return contacts.insert(tx, owner, mxid, name, start, end, NOW)


def test_migrations_apply_once(proxy_db: Database) -> None:
    assert proxy_db.migrate(COMPONENT, MIGRATIONS) == []
    with proxy_db.read() as cur:
        rows = cur.execute(
            "SELECT number FROM schema_migrations WHERE component = ?", ("proxy",)
        ).fetchall()
    assert [int(r[0]) for r in rows] == [1]


def test_insert_get_list_update_delete(proxy_db: Database) -> None:
    assert _add(proxy_db, ALICE, BOB, NOW - 10, None, "Bob")
    assert _add(proxy_db, ALICE, CAROL, NOW, NOW + 60, "Carol")
    assert not _add(proxy_db, ALICE, BOB, 0, None, "again")  # exists: nothing written
    with proxy_db.read() as cur:
        assert contacts.get(cur, ALICE, BOB) == ContactSetting(
            ALICE, BOB, "Bob", NOW - 10, None, NOW, NOW
        )
        assert [c.mxid for c in contacts.list_for(cur, ALICE)] == [BOB, CAROL]
        assert contacts.count(cur, ALICE) == 2
        assert contacts.get(cur, ALICE, "@nobody:klinik.tim.test") is None
    with proxy_db.write() as tx:
        assert contacts.update(tx, ALICE, CAROL, "Carol B.", 5, 6, NOW + 1)
        assert not contacts.update(tx, ALICE, "@nobody:klinik.tim.test", "n", 1, None, NOW)
    with proxy_db.read() as cur:
        carol = contacts.get(cur, ALICE, CAROL)
    assert carol == ContactSetting(ALICE, CAROL, "Carol B.", 5, 6, NOW, NOW + 1)
    with proxy_db.write() as tx:
        assert contacts.delete(tx, ALICE, BOB)
        assert not contacts.delete(tx, ALICE, BOB)
    with proxy_db.read() as cur:
        assert [c.mxid for c in contacts.list_for(cur, ALICE)] == [CAROL]


def test_settings_are_per_owner(proxy_db: Database) -> None:
    _add(proxy_db, ALICE, CAROL, 0, None, "Carol for Alice")
    _add(proxy_db, BOB, CAROL, 0, None, "Carol for Bob")
    with proxy_db.write() as tx:
        contacts.delete(tx, BOB, CAROL)
    with proxy_db.read() as cur:
        assert contacts.list_for(cur, BOB) == []
        alice_list = contacts.list_for(cur, ALICE)
    assert [(c.owner, c.display_name) for c in alice_list] == [(ALICE, "Carol for Alice")]


def test_large_timestamps_round_trip(proxy_db: Database) -> None:
    """int64 seconds, as the API's ``format: int64`` allows."""
    _add(proxy_db, ALICE, BOB, 2**62, 2**63 - 1)
    with proxy_db.read() as cur:
        setting = contacts.get(cur, ALICE, BOB)
    assert setting is not None
    assert (setting.start, setting.end) == (2**62, 2**63 - 1)


@pytest.mark.parametrize(
    ("start", "end", "allowed"),
    [
        (NOW - 100, None, True),  # open end
        (NOW, None, True),  # starts now (inclusive)
        (NOW + 1, None, False),  # starts in the future
        (NOW - 100, NOW + 100, True),  # inside the window
        (NOW - 100, NOW, True),  # ends now (inclusive)
        (NOW - 100, NOW - 1, False),  # ended
    ],
)
def test_ml_132864_stage_2_allows_inside_the_window_only(
    proxy_db: Database, start: int, end: int | None, allowed: bool
) -> None:
    _add(proxy_db, BOB, ALICE, start, end)
    with proxy_db.read() as cur:
        assert contacts.allows(cur, BOB, ALICE, NOW) is allowed


def test_ml_132864_stage_2_only_the_invitees_list_counts(proxy_db: Database) -> None:
    """Testsuite 11.04/11.05: the inviter listing the invitee grants nothing."""
    _add(proxy_db, ALICE, BOB, 0, None)  # Alice lists Bob
    with proxy_db.read() as cur:
        assert not contacts.allows(cur, BOB, ALICE, NOW)  # Alice may not invite Bob
        assert contacts.allows(cur, ALICE, BOB, NOW)  # Bob may invite Alice
        assert not contacts.allows(cur, ALICE, CAROL, NOW)


def test_direct_rooms_record_is_idempotent_first_wins(proxy_db: Database) -> None:
    with proxy_db.write() as tx:
        assert direct_rooms.record(tx, "!r1:praxis.tim.test", ALICE, BOB, NOW) == (ALICE, BOB)
    with proxy_db.write() as tx:
        assert direct_rooms.record(tx, "!r1:praxis.tim.test", ALICE, BOB, NOW + 1) == (ALICE, BOB)
        assert direct_rooms.record(tx, "!r1:praxis.tim.test", ALICE, CAROL, NOW) == (ALICE, BOB)
    with proxy_db.read() as cur:
        assert direct_rooms.get(cur, "!r1:praxis.tim.test") == (ALICE, BOB)
        assert direct_rooms.get(cur, "!other:praxis.tim.test") is None
    with proxy_db.write() as tx:
        assert direct_rooms.forget(tx, "!r1:praxis.tim.test")
        assert not direct_rooms.forget(tx, "!r1:praxis.tim.test")


def test_a_failed_write_leaves_nothing(proxy_db: Database) -> None:
    def insert_then_fail() -> None:
        with proxy_db.write() as tx:
            contacts.insert(tx, ALICE, BOB, "Bob", 0, None, NOW)
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with proxy_db.read() as cur:
        assert contacts.get(cur, ALICE, BOB) is None
