"""The Freigabeliste's logic: validation of ``Contact`` bodies and the contacts service.

:class:`ContactsService` is what both edges of the proxy use:

* the I_TiMessengerContactManagement API (:mod:`timkit.proxy.contacts.api`) manages a user's
  own settings (create, read, update, delete; per-user isolation, ``max_contacts``);
* the inbound proxy asks :meth:`ContactsService.allows` for stage 2 of the permission check
  (seed 002 §3.5.2.2) and records and looks up 1:1 rooms.

Blocking database calls run on worker threads. User ids are canonicalised (server name
lower-cased) before they are stored or compared, see :func:`canonical_mxid`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from timkit.core.db import Cursor, Database
from timkit.core.errors import Codes, TimkitError
from timkit.proxy.storage import contacts as contacts_table
from timkit.proxy.storage import direct_rooms
from timkit.proxy.storage.contacts import ContactSetting

T = TypeVar("T")

STAGE_2_RULE = "ML-132864"
"""Permission check of all stages; stage 2 is the Freigabeliste (seed 002 §3.5.2.2)."""

INT64_MAX = 2**63 - 1
MAX_DISPLAY_NAME = 256
"""Longest ``displayName`` in characters (Synapse's limit for display names)."""
MAX_MXID = 255
"""Longest user id in bytes (Matrix spec, "User Identifiers")."""

_LOCALPART = re.compile(r"[\x21-\x39\x3b-\x7e]+")
"""Historical user id localparts (Matrix spec): printable ASCII except ``:``."""
_DNS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*")
_PORT = re.compile(r"[0-9]{1,5}")


def invalid(field: str, message: str, errcode: str = Codes.INVALID_PARAM) -> TimkitError:
    """A 400 naming ``field`` (``extra.field`` is not rendered by the API, the message is)."""
    return TimkitError(400, errcode, f"{field}: {message}")


def canonical_mxid(value: str, field: str = "mxid") -> str:
    """``@localpart:server`` checked against the Matrix grammar, the server name lower-cased.

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` naming ``field`` when ``value`` is no user id.
    """
    if len(value.encode("utf-8")) > MAX_MXID:
        raise invalid(field, f"a user id has at most {MAX_MXID} bytes")
    if not value.startswith("@") or ":" not in value:
        raise invalid(field, f"{value!r} is not a Matrix user id (@localpart:domain)")
    localpart, _, server = value[1:].partition(":")
    if not _LOCALPART.fullmatch(localpart):
        raise invalid(field, f"{value!r} has an invalid localpart")
    host = _server_host(server)
    if host is None:
        raise invalid(field, f"{value!r} has an invalid server name")
    return f"@{localpart}:{server.lower()}"


def _server_host(server: str) -> str | None:
    """The host of ``server`` (``host[:port]``, IPv6 in brackets), or None if malformed."""
    port = ""
    if server.startswith("["):
        host, sep, rest = server[1:].partition("]")
        if not sep:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    else:
        host, sep, port = server.partition(":")
        if sep and not port:
            return None
        if not _DNS_NAME.fullmatch(host) or len(host) > 253:
            return None
    if port and (not _PORT.fullmatch(port) or not 0 < int(port) < 65536):
        return None
    return host


@dataclass(frozen=True)
class Contact:
    """The API's ``Contact``: ``mxid`` may invite the owner between ``start`` and ``end``."""

    mxid: str
    display_name: str
    start: int
    end: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``Contact`` object of the API (``end`` omitted when open)."""
        settings: dict[str, Any] = {"start": self.start}
        if self.end is not None:
            settings["end"] = self.end
        return {"displayName": self.display_name, "mxid": self.mxid, "inviteSettings": settings}

    @classmethod
    def of(cls, setting: ContactSetting) -> Contact:
        """The API view of a stored setting."""
        return cls(setting.mxid, setting.display_name, setting.start, setting.end)


_CONTACT_FIELDS = frozenset({"displayName", "mxid", "inviteSettings"})
_SETTINGS_FIELDS = frozenset({"start", "end"})


def _timestamp(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, "must be an integer (Unix seconds)", Codes.BAD_JSON)
    if not 0 <= value <= INT64_MAX:
        raise invalid(field, "must be between 0 and 2^63-1 (Unix seconds)")
    return value


def _unknown(document: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    extra = sorted(set(document) - known)
    if extra:
        names = ", ".join(f"{where}{name}" for name in extra)
        raise invalid(names, "unknown field", Codes.BAD_JSON)


def parse_contact(document: Any) -> Contact:
    """A ``Contact`` request body, validated strictly.

    Required: ``displayName`` (string), ``mxid`` (``@localpart:domain``), ``inviteSettings``
    with ``start`` (integer Unix seconds) and optional ``end`` (integer, ``end >= start``;
    ``null`` counts as absent). Unknown fields are refused.

    Raises:
        TimkitError: 400 (``M_BAD_JSON`` for shape and types, ``M_INVALID_PARAM`` for values)
            whose message names the offending field.
    """
    if not isinstance(document, dict):
        raise TimkitError(400, Codes.BAD_JSON, "the body must be a JSON object (Contact)")
    _unknown(document, _CONTACT_FIELDS, "")
    for name in ("displayName", "mxid", "inviteSettings"):
        if name not in document:
            raise invalid(name, "is required", Codes.BAD_JSON)
    display_name = document["displayName"]
    if not isinstance(display_name, str):
        raise invalid("displayName", "must be a string", Codes.BAD_JSON)
    if len(display_name) > MAX_DISPLAY_NAME:
        raise invalid("displayName", f"has at most {MAX_DISPLAY_NAME} characters")
    mxid = document["mxid"]
    if not isinstance(mxid, str):
        raise invalid("mxid", "must be a string", Codes.BAD_JSON)
    settings = document["inviteSettings"]
    if not isinstance(settings, dict):
        raise invalid("inviteSettings", "must be an object", Codes.BAD_JSON)
    _unknown(settings, _SETTINGS_FIELDS, "inviteSettings.")
    if "start" not in settings:
        raise invalid("inviteSettings.start", "is required", Codes.BAD_JSON)
    start = _timestamp(settings["start"], "inviteSettings.start")
    end: int | None = None
    if settings.get("end") is not None:
        end = _timestamp(settings["end"], "inviteSettings.end")
        if end < start:
            raise invalid("inviteSettings.end", "must not be before inviteSettings.start")
    return Contact(canonical_mxid(mxid), display_name, start, end)


def not_found(mxid: str) -> TimkitError:
    """The 404 for a contact setting the user does not hold."""
    return TimkitError(404, Codes.NOT_FOUND, f"no contact setting for {mxid}")


class ContactsService:
    """The Freigabeliste over the proxy database (see the module docstring).

    Args:
        db: the proxy database, migrated (:func:`timkit.proxy.storage.open_database`).
        max_contacts: most settings one user may hold.
        clock: Unix seconds (wall clock: windows are epoch seconds).
        executor: worker threads for database calls; None creates a small pool of its own,
            shut down by :meth:`close`.
    """

    def __init__(
        self,
        db: Database,
        max_contacts: int,
        clock: Callable[[], float] = time.time,
        *,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.db = db
        self.max_contacts = max_contacts
        self._clock = clock
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="proxy-contacts"
        )

    def close(self) -> None:
        """Shut down the worker threads if this service created them (the db stays open)."""
        if self._own_executor:
            self._executor.shutdown(wait=True)

    def _now(self) -> int:
        return int(self._clock())

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _read(self, function: Callable[..., T], *args: Any) -> T:
        with self.db.read() as cur:
            return function(cur, *args)

    def _write(self, function: Callable[..., T], *args: Any) -> T:
        with self.db.write() as cur:
            return function(cur, *args)

    # The Freigabeliste API (owner = the authenticated user).

    async def list_contacts(self, owner: str) -> list[Contact]:
        """All of ``owner``'s contact settings, ordered by contact id."""
        rows = await self._blocking(self._read, contacts_table.list_for, owner)
        return [Contact.of(r) for r in rows]

    async def get_contact(self, owner: str, mxid: str) -> Contact:
        """``owner``'s setting for ``mxid``.

        Raises:
            TimkitError: 400 for a malformed ``mxid``; 404 when ``owner`` holds none.
        """
        mxid = canonical_mxid(mxid)
        row = await self._blocking(self._read, contacts_table.get, owner, mxid)
        if row is None:
            raise not_found(mxid)
        return Contact.of(row)

    async def create_contact(self, owner: str, contact: Contact) -> Contact:
        """Add ``owner``'s setting for ``contact.mxid``.

        Raises:
            TimkitError: 409 ``M_CONFLICT`` when one exists (update it with PUT); 400
                ``M_RESOURCE_LIMIT_EXCEEDED`` when ``owner`` holds ``max_contacts`` already.
        """
        return await self._blocking(self._write, self._create, owner, contact, self._now())

    def _create(self, cur: Cursor, owner: str, contact: Contact, now_s: int) -> Contact:
        if contacts_table.get(cur, owner, contact.mxid) is not None:
            raise TimkitError(
                409,
                Codes.CONFLICT,
                f"a contact setting for {contact.mxid} exists already; change it with PUT",
            )
        if contacts_table.count(cur, owner) >= self.max_contacts:
            raise TimkitError(
                400,
                Codes.RESOURCE_LIMIT_EXCEEDED,
                f"at most {self.max_contacts} contact settings per user; delete one first",
            )
        if not contacts_table.insert(
            cur, owner, contact.mxid, contact.display_name, contact.start, contact.end, now_s
        ):  # pragma: no cover - another process inserted it between the check and now
            raise TimkitError(409, Codes.CONFLICT, f"a contact setting for {contact.mxid} exists")
        return contact

    async def update_contact(self, owner: str, contact: Contact) -> Contact:
        """Replace ``owner``'s setting for ``contact.mxid``.

        Raises:
            TimkitError: 404 when ``owner`` holds none (create it with POST).
        """
        done = await self._blocking(
            self._write,
            contacts_table.update,
            owner,
            contact.mxid,
            contact.display_name,
            contact.start,
            contact.end,
            self._now(),
        )
        if not done:
            raise not_found(contact.mxid)
        return contact

    async def delete_contact(self, owner: str, mxid: str) -> None:
        """Remove ``owner``'s setting for ``mxid``.

        Raises:
            TimkitError: 400 for a malformed ``mxid``; 404 when ``owner`` holds none.
        """
        mxid = canonical_mxid(mxid)
        if not await self._blocking(self._write, contacts_table.delete, owner, mxid):
            raise not_found(mxid)

    # The inbound proxy.

    async def allows(self, owner: str, inviter: str) -> bool:
        """Stage 2 (seed 002 §3.5.2.2, ML-132864): may ``inviter`` invite ``owner`` now?

        True when ``owner``'s Freigabeliste holds an active setting for ``inviter``; False
        otherwise (then stage 3 decides), also for ids that are no valid user ids.
        """
        try:
            owner = canonical_mxid(owner, "owner")
            inviter = canonical_mxid(inviter, "inviter")
        except TimkitError:
            return False
        return await self._blocking(self._read, contacts_table.allows, owner, inviter, self._now())

    async def record_direct_room(self, room_id: str, user_a: str, user_b: str) -> tuple[str, str]:
        """Remember ``room_id`` as the 1:1 room of ``user_a`` and ``user_b`` (idempotent).

        Returns:
            the pair held for the room: the given one, or the earlier one if it was known.
        """
        return await self._blocking(
            self._write, direct_rooms.record, room_id, user_a, user_b, self._now()
        )

    async def direct_room(self, room_id: str) -> tuple[str, str] | None:
        """The two members of the 1:1 room ``room_id``, or None when it is no known 1:1 room."""
        return await self._blocking(self._read, direct_rooms.get, room_id)

    async def forget_direct_room(self, room_id: str) -> bool:
        """Drop the record of ``room_id`` (e.g. when it stops being 1:1); False if unknown."""
        return await self._blocking(self._write, direct_rooms.forget, room_id)
