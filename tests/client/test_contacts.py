"""The SDK's Freigabeliste against the Messenger-Proxy's real I_TiMessengerContactManagement
app (over HTTP, a real proxy database, a real OpenID validator asking the homeserver
stand-in of ``tests/proxy/conftest.py``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.proxy.conftest import ALICE, BOB, SERVER, Homeserver, homeserver
from timkit.client.contacts import Contact, Contacts, accept_scanned
from timkit.client.openid import OpenIdToken
from timkit.client.vcard import ContactCard
from timkit.core.errors import TimkitError
from timkit.proxy.contacts.api import PREFIX, contacts_app
from timkit.proxy.contacts.handlers import ContactsService
from timkit.proxy.openid import OpenIdValidator
from timkit.proxy.storage import open_database

__all__ = ["homeserver"]  # the userinfo stand-in fixture of tests/proxy/conftest.py

CAROL = "@carol:klinikum-nord.tim.test"
HOUR = timedelta(hours=1)


@dataclass
class Tokens:
    """The actor's OpenID token source: hands out ``queue`` first, then ``alice-token``."""

    queue: list[OpenIdToken] = field(default_factory=list)
    issued: int = 0

    async def __call__(self) -> OpenIdToken:
        self.issued += 1
        if self.queue:
            return self.queue.pop(0)
        return OpenIdToken("alice-token", SERVER, time.time() + 3600)


@dataclass
class Proxy:
    url: str
    homeserver: Homeserver
    http: httpx.AsyncClient

    def contacts(self, tokens: Tokens, user_id: str = ALICE) -> Contacts:
        return Contacts(self.http, self.url, user_id, tokens)


@pytest.fixture
async def proxy(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[Proxy]:
    db = open_database(f"sqlite:///{tmp_path}/proxy.db")
    service = ContactsService(db, max_contacts=20)
    validator = OpenIdValidator(homeserver.url, SERVER, cache_seconds=0)
    app = web.Application()
    app.add_subapp(PREFIX, contacts_app(service, validator))
    server = TestServer(app)
    await server.start_server()
    async with httpx.AsyncClient(timeout=10) as http:
        yield Proxy(str(server.make_url("")).rstrip("/"), homeserver, http)
    await server.close()
    await validator.close()
    service.close()
    db.close()


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


async def test_add_get_list_update_remove_round_trip(proxy: Proxy) -> None:
    contacts = proxy.contacts(Tokens())
    start = _second(datetime.now(UTC) - HOUR)
    added = await contacts.add(CAROL, "Nord, Carol", start, start + 24 * HOUR)
    assert added == Contact(CAROL, "Nord, Carol", start, start + 24 * HOUR)
    assert await contacts.get(CAROL) == added
    assert added.active()
    open_ended = await contacts.add(BOB, "Bob")
    assert open_ended.end is None
    assert open_ended.start is not None
    assert open_ended.start <= datetime.now(UTC)
    assert set(await contacts.list()) == {added, open_ended}
    updated = await contacts.update(CAROL, "Nord, Caroline", start, start + HOUR / 2)
    assert updated == Contact(CAROL, "Nord, Caroline", start, start + HOUR / 2)
    assert not updated.active()
    await contacts.remove(CAROL)
    assert await contacts.list() == (open_ended,)
    with pytest.raises(TimkitError) as raised:
        await contacts.get(CAROL)
    assert (raised.value.status, raised.value.errcode) == (404, "M_NOT_FOUND")


async def test_the_mxid_is_one_path_segment_whatever_it_holds(proxy: Proxy) -> None:
    contacts = proxy.contacts(Tokens())
    odd = "@dr.med=x+y_z/a?b#c%d:Klinikum-Nord.tim.test"
    added = await contacts.add(odd, "Odd")
    assert added.mxid == "@dr.med=x+y_z/a?b#c%d:klinikum-nord.tim.test"
    assert await contacts.get(odd) == added
    await contacts.remove(odd)
    assert await contacts.list() == ()


async def test_one_openid_token_serves_until_it_expires(proxy: Proxy) -> None:
    soon = OpenIdToken("alice-token", SERVER, time.time() + 5)
    tokens = Tokens([soon])
    contacts = proxy.contacts(tokens)
    await contacts.list()  # with the expiring token
    await contacts.list()  # the token is about to expire: a new one
    await contacts.add(CAROL, "Carol")
    await contacts.get(CAROL)
    await contacts.remove(CAROL)
    assert tokens.issued == 2
    assert proxy.homeserver.hits == 5


async def test_a_token_the_proxy_refuses_is_replaced_once(proxy: Proxy) -> None:
    revoked = OpenIdToken("revoked-token", SERVER, time.time() + 3600)
    tokens = Tokens([revoked])
    assert await proxy.contacts(tokens).list() == ()
    assert tokens.issued == 2
    always_bad = Tokens([revoked, revoked])
    with pytest.raises(TimkitError) as raised:
        await proxy.contacts(always_bad).list()
    assert (raised.value.status, raised.value.errcode) == (401, "M_UNKNOWN_TOKEN")
    assert always_bad.issued == 2


async def test_the_mxid_header_names_the_actor(proxy: Proxy) -> None:
    with pytest.raises(TimkitError) as raised:
        await proxy.contacts(Tokens(), user_id=BOB).list()
    assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")
    assert "Mxid" in raised.value.message


async def test_the_proxy_s_error_object_becomes_a_timkit_error(proxy: Proxy) -> None:
    contacts = proxy.contacts(Tokens())
    await contacts.add(CAROL, "Carol")
    with pytest.raises(TimkitError) as raised:
        await contacts.add(CAROL, "Carol again")
    assert (raised.value.status, raised.value.errcode) == (409, "M_CONFLICT")
    assert CAROL in raised.value.message
    with pytest.raises(TimkitError) as raised:
        await contacts.update(BOB, "Bob")
    assert raised.value.status == 404


NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.add("carol", "Carol"), "mxid"),
        (lambda c: c.add("@carol", "Carol"), "mxid"),
        (lambda c: c.add("@ca rol:klinikum-nord.tim.test", "Carol"), "mxid"),
        (lambda c: c.add("@carol:klinikum-nord.tim.test/../x", "Carol"), "mxid"),
        (lambda c: c.get("%40carol%3Aklinikum-nord.tim.test"), "mxid"),
        (lambda c: c.remove("@carol:klinikum nord"), "mxid"),
        (lambda c: c.add(CAROL, "Carol", NOW, NOW - HOUR), "end"),
        (lambda c: c.update(CAROL, "Carol", NOW, NOW), "end"),
        (lambda c: c.add(CAROL, "Carol", None, NOW - HOUR), "end"),
        (lambda c: c.add(CAROL, "Carol", datetime(2026, 12, 8, 9, 0)), "start"),
        (lambda c: c.add(CAROL, "Carol", NOW, datetime(2026, 12, 24, 9, 0)), "end"),
        (lambda c: c.add(CAROL, "Carol", datetime(1969, 1, 1, tzinfo=UTC)), "start"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_before_anything_is_sent(
    proxy: Proxy, call: Callable[[Contacts], Awaitable[object]], field: str
) -> None:
    tokens = Tokens()
    with pytest.raises(TimkitError) as raised:
        await call(proxy.contacts(tokens))
    assert (raised.value.status, raised.value.errcode) == (400, "M_INVALID_PARAM")
    assert raised.value.message.startswith(f"{field}: ")
    assert tokens.issued == 0
    assert proxy.homeserver.hits == 0


async def test_af_10061_accept_scanned_lists_the_card_under_name_vorname(proxy: Proxy) -> None:
    contacts = proxy.contacts(Tokens())
    card = ContactCard("Nord", "Carol", "", "Dr.", "", "Dr. Carol Nord", CAROL)
    accepted = await accept_scanned(contacts, card)
    assert (accepted.mxid, accepted.display_name, accepted.end) == (CAROL, "Nord, Carol", None)
    # scanned again with a window: the setting is replaced, not refused
    start = _second(NOW)
    again = await accept_scanned(contacts, card, start, start + HOUR)
    assert again == Contact(CAROL, "Nord, Carol", start, start + HOUR)
    assert await contacts.list() == (again,)


async def test_accepting_one_s_own_card_is_refused(proxy: Proxy) -> None:
    tokens = Tokens()
    own = ContactCard("Muster", "Alice", "", "", "", "", "@alice:PRAXIS.tim.test")
    with pytest.raises(TimkitError) as raised:
        await accept_scanned(proxy.contacts(tokens), own)
    assert raised.value.status == 400
    assert raised.value.requirement == "AF_10061"
    assert tokens.issued == 0


async def test_an_unreachable_proxy_is_a_502() -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        contacts = Contacts(http, "http://127.0.0.1:9", ALICE, Tokens())
        with pytest.raises(TimkitError) as raised:
            await contacts.list()
    assert (raised.value.status, raised.value.errcode) == (502, "TIMKIT_UPSTREAM")
