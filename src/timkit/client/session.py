"""The logged-in actor: :class:`TimClient` (AF_10057 login, sync, events, OpenID, profile).

Login (AF_10057, sequence "Anmeldung eines Akteurs am Messenger-Service"):

1. discover the homeserver from the domain of the MXID (:mod:`.discovery`);
2. ``POST /login`` (password; the AF_10057 client headers when configured) → access token
   and device id (ML-123576);
3. the federation check right away: OpenID token → the VZD's ``/tim-authenticate``. When the
   VZD refuses the homeserver (or cannot be asked: the check fails closed) the client logs
   out, deletes the token and raises (ML-123571, ML-129870);
4. store token, device id and crypto store in the profile, files 0600 (ML-123575).

End-to-end encryption is on (matrix-nio with vodozemac): device keys are uploaded after
login, every room the SDK creates is encrypted, sending shares Megolm keys with every device
of the room's members (trust on first use; cross-signing in :mod:`timkit.client.keys`).

The sync loop (:meth:`TimClient.start`) turns each sync into typed :mod:`.events`, kept in a
bounded history and handed to every :meth:`TimClient.events` subscriber and
:meth:`TimClient.wait_for` waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx
import nio

from timkit.client import events as ev
from timkit.client.contacts import Contacts
from timkit.client.directory_search import DirectorySearch
from timkit.client.discovery import discover
from timkit.client.hba import (
    OwnerEntries,
    PublishedEndpoint,
    VisibilityResult,
    owner_login_hba,
)
from timkit.client.keys import recovery
from timkit.client.keys.device import OlmDevice
from timkit.client.matrix_api import MatrixApi, segment
from timkit.client.messages import Messages
from timkit.client.mxid import parse_mxid
from timkit.client.nio_errors import checked, nio_error
from timkit.client.openid import (
    EXPIRY_MARGIN,
    OpenIdToken,
    SearchToken,
    request_openid_token,
    tim_authenticate,
)
from timkit.client.options import ClientOptions
from timkit.client.profile import Profile, StoredSession
from timkit.client.rawdata_report import PUBLISH, measured_run
from timkit.client.rooms import Rooms
from timkit.core.errors import Codes, TimkitError
from timkit.core.http import async_client
from timkit.core.tls import client_ssl_context

log = logging.getLogger(__name__)

HISTORY = 2000
"""Events kept for :meth:`TimClient.wait_for` (a waiter also sees what arrived before it)."""
SYNC_TIMEOUT_MS = 30_000

T = TypeVar("T")


def split_user_id(user_id: str) -> tuple[str, str]:
    """``(localpart, domain)`` of ``@localpart:domain`` (:func:`~timkit.client.mxid.parse_mxid`).

    Raises:
        TimkitError: 400 when ``user_id`` is not a Matrix user id.
    """
    localpart, _, domain = parse_mxid(user_id, "user_id")[1:].partition(":")
    return localpart, domain


class TimClient:
    """One actor's device: a logged-in session with its crypto store.

    Make one with :meth:`login` or :meth:`restore`; use it as an async context manager or
    call :meth:`close`. Rooms are :attr:`rooms`, messages and media :attr:`messages`.
    """

    def __init__(
        self,
        profile: Profile,
        options: ClientOptions,
        http: httpx.AsyncClient,
        session: StoredSession,
    ) -> None:
        self.profile = profile
        self.options = options
        self.http = http
        self.session = session
        self.api = MatrixApi(http, session.base_url, session.access_token)
        config = nio.AsyncClientConfig(
            encryption_enabled=True, store_sync_tokens=True, request_timeout=options.timeout
        )
        tls = client_ssl_context(options.ca_file) if options.ca_file else None
        self.nio = nio.AsyncClient(
            session.base_url,
            session.user_id,
            device_id=session.device_id,
            store_path=str(profile.store_dir),
            config=config,
            ssl=tls,
        )
        self.rooms = Rooms(self)
        self.messages = Messages(self)
        # both keep their token and ask for a new one after a refusal: they get a fresh
        # OpenID token on every call, not this client's cached one
        self.contacts = Contacts(http, session.base_url, session.user_id, self.new_openid_token)
        self.directory = DirectorySearch(http, options.directory_url, self.new_openid_token)
        self._openid: OpenIdToken | None = None
        self._history: deque[ev.Event] = deque(maxlen=HISTORY)
        self._subscribers: list[asyncio.Queue[ev.Event]] = []
        self._arrived = asyncio.Condition()
        self._sync_lock = asyncio.Lock()
        self._sync_task: asyncio.Task[None] | None = None
        self.decryption_failures = 0

    @property
    def user_id(self) -> str:
        return self.session.user_id

    @property
    def device_id(self) -> str:
        return self.session.device_id

    # -- login, restore, logout ----------------------------------------------------------

    @classmethod
    async def login(
        cls,
        profile: Profile,
        options: ClientOptions,
        user_id: str,
        password: str,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> TimClient:
        """Log ``user_id`` in with ``password`` on a new device of ``profile`` (AF_10057).

        ``progress`` is told each step (German, for the actor).

        Raises:
            TimkitError: discovery failed (502), the homeserver refused the login (its
                status and ``errcode``, e.g. 403 ``M_FORBIDDEN``), or the federation check
                refused the homeserver (401/403, ``ML-129870``; the new token is revoked and
                nothing is stored).
        """
        localpart, _ = split_user_id(user_id)
        body: dict[str, Any] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
            "initial_device_display_name": options.device_name,
        }
        return await cls._start(profile, options, user_id, "login", body, progress)

    @classmethod
    async def register(
        cls,
        profile: Profile,
        options: ClientOptions,
        user_id: str,
        password: str,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> TimClient:
        """Register ``user_id`` where the homeserver allows it, then as :meth:`login`
        (AF_10057: "Der Ablauf der Registrierung ist analog dem des Login-Verfahrens").

        Raises:
            TimkitError: as :meth:`login`; the homeserver's 403 ``M_FORBIDDEN`` when it
                allows no registration (TI-M providers usually create accounts through the
                Org-Admin), 400 ``M_USER_IN_USE`` for a taken name.
        """
        localpart, _ = split_user_id(user_id)
        body: dict[str, Any] = {
            "username": localpart,
            "password": password,
            "initial_device_display_name": options.device_name,
            "auth": {"type": "m.login.dummy"},
        }
        return await cls._start(profile, options, user_id, "register", body, progress)

    @classmethod
    async def _start(
        cls,
        profile: Profile,
        options: ClientOptions,
        user_id: str,
        endpoint: str,
        body: dict[str, Any],
        progress: Callable[[str], None] | None,
    ) -> TimClient:
        """Discovery, ``POST /<endpoint>``, the federation check, the stored session."""
        _, domain = split_user_id(user_id)
        step = progress or (lambda _: None)
        http = async_client(options.ca_file, timeout=options.timeout)
        try:
            base_url = await discover(http, domain, options.hosts)
            step(f"Homeserver von {domain}: {base_url}")
            answer = await MatrixApi(http, base_url).call(
                "POST",
                f"/_matrix/client/v3/{endpoint}",
                json=body,
                headers=options.client_headers(),
            )
            fields = [answer.get(k) for k in ("user_id", "device_id", "access_token")]
            if not all(isinstance(f, str) and f for f in fields):
                raise TimkitError(
                    502, Codes.UPSTREAM, f"{endpoint} answered without user, device and token"
                )
            user, device, token = map(str, fields)
            session = StoredSession(user, device, token, base_url)
            profile.forget()  # a new device starts with a new crypto store
            profile.prepare()
            client = cls(profile, options, http, session)
        except BaseException:
            await http.aclose()
            raise
        step(f"angemeldet als {session.user_id}, Gerät {session.device_id}")
        try:
            # the federation check and the device's keys are independent: both at once; a
            # refused check revokes the device, its uploaded keys go with it
            await _both(client.check_federation(), client._open_store())
            step("Föderationsprüfung am VZD-FHIR-Directory bestanden")
            profile.save(session)
        except BaseException:
            await client._revoke()
            raise
        return client

    @classmethod
    async def restore(cls, profile: Profile, options: ClientOptions) -> TimClient:
        """The session stored in ``profile``, checked with ``whoami``.

        Raises:
            TimkitError: 401 when the profile holds no session or the homeserver no longer
                accepts its token (the session is then deleted: log in again).
        """
        session = profile.load()
        if session is None:
            raise TimkitError(
                401,
                Codes.MISSING_TOKEN,
                f"Profil {profile.name}: nicht angemeldet (timkit client login)",
            )
        http = async_client(options.ca_file, timeout=options.timeout)
        client = cls(profile, options, http, session)
        try:
            await client.api.call("GET", "/_matrix/client/v3/account/whoami")
            await client._open_store()
        except TimkitError as e:
            if e.status == 401:
                profile.forget()
                await client.close()
                raise TimkitError(
                    401,
                    Codes.UNKNOWN_TOKEN,
                    f"Profil {profile.name}: die Sitzung ist abgelaufen, bitte neu anmelden",
                ) from e
            await client.close()
            raise
        except BaseException:
            await client.close()
            raise
        return client

    async def _open_store(self) -> None:
        self.nio.restore_login(self.user_id, self.device_id, self.session.access_token)
        self.profile.protect_store()
        if self.nio.should_upload_keys:
            checked(await self.nio.keys_upload(), "upload device keys")

    async def check_federation(self) -> SearchToken:
        """The AF_10057 federation check: this homeserver's OpenID token at the VZD.

        Returns the search-accesstoken it yields; :attr:`directory` keeps it for searches.

        Raises:
            TimkitError: 401/403 with ``ML-129870`` when the VZD refuses the homeserver,
                502 when the VZD cannot be asked.
        """
        token = await tim_authenticate(
            self.http, self.options.directory_url, await self.openid_token()
        )
        self.directory.seed(token)
        return token

    async def _revoke(self) -> None:
        """Log the new device out and delete what was stored (ML-129870)."""
        with contextlib.suppress(TimkitError):
            await self.api.call("POST", "/_matrix/client/v3/logout", json={})
        self.profile.forget()
        await self.close()

    async def logout(self) -> None:
        """End this device's session at the homeserver and delete token and crypto store."""
        await self.stop()
        try:
            await self.api.call("POST", "/_matrix/client/v3/logout", json={})
        finally:
            self.profile.forget()
            await self.close()

    async def close(self) -> None:
        """Stop syncing and release connections; the stored session stays."""
        await self.stop()
        await self.nio.close()
        await self.http.aclose()

    async def __aenter__(self) -> TimClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- tokens ---------------------------------------------------------------------------

    async def new_openid_token(self) -> OpenIdToken:
        """A new OpenID token of this user (for callers that cache and renew themselves)."""
        return await request_openid_token(self.api, self.user_id)

    async def openid_token(self) -> OpenIdToken:
        """An OpenID token of this user, reused until shortly before it expires."""
        token = self._openid
        if token is None or time.time() >= token.expires_at - EXPIRY_MARGIN:
            token = self._openid = await request_openid_token(self.api, self.user_id)
        return token

    # -- sync and events ------------------------------------------------------------------

    async def sync_once(self, timeout_ms: int = 0) -> None:
        """One ``/sync`` (the first with full state), its events dispatched, keys handled.

        The request goes through :attr:`api` (httpx), not nio's aiohttp session: a sync
        long-poll cancelled by :meth:`stop` then closes its connection cleanly; nio gets the
        parsed response to update rooms and decrypt, exactly as after its own ``sync``.

        Raises:
            TimkitError: the homeserver refused the sync (or answered no sync response).
        """
        async with self._sync_lock:
            params = {"timeout": str(timeout_ms)}
            since = self.nio.next_batch or self.nio.loaded_sync_token
            if since:
                params["since"] = since
            if not self.nio.rooms:
                params["full_state"] = "true"
            body = await self.api.call(
                "GET",
                "/_matrix/client/v3/sync",
                params=params,
                timeout=timeout_ms / 1000 + self.options.timeout,
            )
            response = nio.SyncResponse.from_dict(body)
            if not isinstance(response, nio.SyncResponse):
                raise nio_error(response, "sync")
            await self.nio.receive_response(response)
            await self._keys_housekeeping()
        await self._dispatch(response)

    async def _keys_housekeeping(self) -> None:
        if self.nio.should_upload_keys:
            checked(await self.nio.keys_upload(), "upload device keys")
        if self.nio.should_query_keys:
            checked(await self.nio.keys_query(), "query device keys")
        if self.nio.should_claim_keys:
            users = self.nio.get_users_for_key_claiming()
            checked(await self.nio.keys_claim(users), "claim one-time keys")
        await self.nio.send_to_device_messages()

    def start(self) -> None:
        """Sync in the background until :meth:`stop` (idempotent)."""
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.create_task(self._sync_loop(), name=f"sync {self.user_id}")

    async def stop(self) -> None:
        """Stop the background sync (idempotent)."""
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def syncing(self) -> bool:
        return self._sync_task is not None and not self._sync_task.done()

    async def _sync_loop(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.sync_once(SYNC_TIMEOUT_MS)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except TimkitError as e:
                if e.status == 401:
                    log.warning("%s: sync refused, stopping: %s", self.user_id, e)
                    return
                log.warning("%s: sync failed, retrying in %.1fs: %s", self.user_id, delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _dispatch(self, response: nio.SyncResponse) -> None:
        found: list[ev.Event] = []
        for room_id, joined in response.rooms.join.items():
            for event in joined.timeline.events:
                converted = ev.timeline_event(room_id, event)
                if converted is not None:
                    found.append(converted)
        for room_id, invited in response.rooms.invite.items():
            invitation = ev.invite(room_id, self.user_id, invited)
            if invitation is not None:
                found.append(invitation)
        if not found:
            return
        self.decryption_failures += sum(isinstance(e, ev.Undecryptable) for e in found)
        async with self._arrived:
            self._history.extend(found)
            for queue in self._subscribers:
                for event in found:
                    queue.put_nowait(event)
            self._arrived.notify_all()

    async def events(self) -> AsyncIterator[ev.Event]:
        """Every event from now on, in arrival order (needs :meth:`start`)."""
        queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    async def wait_for(self, match: Callable[[ev.Event], T | None], timeout: float = 30.0) -> T:
        """The first event (also one already received) for which ``match`` returns a value.

        Syncs itself when the background sync is not running.

        Raises:
            TimkitError: 504 when nothing matched within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            async with self._arrived:
                history = list(self._history)
            for event in history[seen:] if seen <= len(history) else history:
                result = match(event)
                if result is not None:
                    return result
            seen = len(history)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimkitError(504, Codes.UNKNOWN, f"no matching event within {timeout:.0f}s")
            if self.syncing:
                async with self._arrived:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._arrived.wait(), remaining)
            else:
                await self.sync_once(int(min(remaining, 10.0) * 1000))

    async def ensure_room(self, room_id: str, timeout: float = 30.0) -> None:
        """Wait until a sync has shown ``room_id`` as joined (its state and members known),
        and the devices of its members are queried, so that a message can be encrypted.

        Raises:
            TimkitError: 404 when the room does not appear within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while room_id not in self.nio.rooms:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimkitError(404, Codes.NOT_FOUND, f"{room_id}: not a room of {self.user_id}")
            if self.syncing:
                async with self._arrived:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._arrived.wait(), min(remaining, 1.0))
            else:
                await self.sync_once(0)
        if self.nio.should_query_keys:
            async with self._sync_lock:
                if self.nio.should_query_keys:
                    checked(await self.nio.keys_query(), "query device keys")

    # -- recovery: cross-signing, secret storage, key backup ------------------------------

    def _olm(self) -> OlmDevice:
        if self.nio.olm is None:
            raise TimkitError(409, Codes.UNKNOWN, "the crypto store of this device is not open")
        return cast(OlmDevice, self.nio.olm)

    async def setup_recovery(self, password: str) -> str:
        """Cross-sign this device, create secret storage and a key backup holding this
        device's room keys; returns the recovery key the actor must keep (see
        :func:`timkit.client.keys.recovery.setup_recovery`)."""
        return await recovery.setup_recovery(
            self.api, self._olm(), self.user_id, self.device_id, password
        )

    async def recover(self, recovery_key: str) -> recovery.RestoreResult:
        """On a further device: cross-sign it and restore the room keys from the backup, so
        that messages sent before this device existed can be read."""
        return await recovery.recover(
            self.api, self._olm(), self.user_id, self.device_id, recovery_key
        )

    async def backup_keys(self) -> int:
        """Upload the room keys the backup lacks; how many."""
        return await recovery.upload_new_sessions(self.api, self._olm())

    async def backup_status(self) -> recovery.BackupStatus:
        """The account's current key backup."""
        return await recovery.backup_status(self.api)

    # -- the own directory entry (AF_10058, User-HBA) -------------------------------------

    async def owner_entries(self, card_id: str) -> OwnerEntries:
        """Sign in at the FHIR-Proxy with the HBA ``card_id`` via the IDP; the own entries."""
        token = await owner_login_hba(self.http, self.options.directory_url, card_id)
        return OwnerEntries(self.http, self.options.directory_url, token)

    async def publish_in_directory(self, card_id: str) -> PublishedEndpoint:
        """AF_10058: publish this actor's MXID on the own PractitionerRole (ML-123612, only
        there: ML-123611), the run measured and delivered as raw data (ML-132588)."""
        async with measured_run(self.api, PUBLISH):
            entries = await self.owner_entries(card_id)
            return await entries.publish_mxid(self.user_id)

    async def set_directory_visibility(self, card_id: str, visible: bool) -> VisibilityResult:
        """Switch the own directory Endpoints of this MXID on or off; the result carries the
        inconsistency hint when the organisation directory still shows the MXID."""
        async with measured_run(self.api, PUBLISH):
            entries = await self.owner_entries(card_id)
            return await entries.set_visibility(self.user_id, visible)

    async def remove_from_directory(self, card_id: str) -> tuple[str, ...]:
        """Unlink and delete the own directory Endpoints carrying this MXID; their
        references."""
        async with measured_run(self.api, PUBLISH):
            entries = await self.owner_entries(card_id)
            return await entries.remove_mxid(self.user_id)

    # -- profile and users ----------------------------------------------------------------

    async def display_name(self, user_id: str | None = None) -> str | None:
        """The display name of ``user_id`` (default: this user), ``None`` when unset."""
        path = f"/_matrix/client/v3/profile/{segment(user_id or self.user_id)}/displayname"
        try:
            body = await self.api.call("GET", path)
        except TimkitError as e:
            if e.status == 404:
                return None
            raise
        name = body.get("displayname")
        return name if isinstance(name, str) else None

    async def set_display_name(self, family_name: str, given_name: str) -> str:
        """Give this actor the display name ``[Name], [Vorname]`` — once (Client.adoc,
        "Editierbarkeit von Displaynamen").

        Returns the display name set.

        Raises:
            TimkitError: 400 when a part is empty or contains a comma; 403 when the actor
                already has a display name (only the Org-Admin may change it).
        """
        family, given = family_name.strip(), given_name.strip()
        if not family or not given or "," in family + given:
            raise TimkitError(
                400,
                Codes.INVALID_PARAM,
                "Displayname: Name und Vorname sind nötig, ohne Komma ([Name], [Vorname])",
            )
        current = await self.display_name()
        localpart, _ = split_user_id(self.user_id)
        if current not in (None, "", localpart):
            raise TimkitError(
                403,
                Codes.FORBIDDEN,
                f"Der Displayname ist bereits {current!r}; ändern kann ihn nur der "
                "Org-Admin Ihrer Organisation",
                requirement="Client.adoc Editierbarkeit von Displaynamen",
            )
        name = f"{family}, {given}"
        path = f"/_matrix/client/v3/profile/{segment(self.user_id)}/displayname"
        await self.api.call("PUT", path, json={"displayname": name})
        return name

    async def search_users(self, term: str, limit: int = 20) -> list[UserHit]:
        """Actors of this homeserver matching ``term`` (user directory; AF_10104, ML-123896)."""
        body = await self.api.call(
            "POST",
            "/_matrix/client/v3/user_directory/search",
            json={"search_term": term, "limit": limit},
        )
        results = body.get("results")
        return [
            UserHit(str(r["user_id"]), _str_or_none(r.get("display_name")))
            for r in (results if isinstance(results, list) else [])
            if isinstance(r, dict) and isinstance(r.get("user_id"), str)
        ]

    async def devices(self) -> list[Device]:
        """This user's devices (``GET /devices``)."""
        body = await self.api.call("GET", "/_matrix/client/v3/devices")
        found = body.get("devices")
        return [
            Device(
                str(d["device_id"]),
                _str_or_none(d.get("display_name")),
                seen if isinstance(seen := d.get("last_seen_ts"), int) else None,
                d["device_id"] == self.device_id,
            )
            for d in (found if isinstance(found, list) else [])
            if isinstance(d, dict) and isinstance(d.get("device_id"), str)
        ]


@dataclass(frozen=True)
class UserHit:
    """One user directory result."""

    user_id: str
    display_name: str | None


@dataclass(frozen=True)
class Device:
    """One of the user's devices; ``current`` marks this client's own."""

    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    current: bool


async def _both(first: Awaitable[object], second: Awaitable[object]) -> None:
    """Run both to their end (never cancelling one mid-request); raise the first's error,
    else the second's."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        await asyncio.wait(tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
    errors = [task.exception() for task in tasks]  # both retrieved, none left dangling
    for error in errors:
        if error is not None:
            raise error


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
