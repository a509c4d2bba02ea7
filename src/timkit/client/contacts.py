"""The actor's Freigabeliste through the Messenger-Proxy's I_TiMessengerContactManagement
1.0.2 (Client.adoc "I_TiMessengerContactManagement", AF_10061).

Every request carries ``Authorization: Bearer <Matrix OpenID token>`` of the actor and the
``Mxid`` header naming them; one OpenID token serves until shortly before it expires (and is
replaced once when the proxy answers 401 to it). Input is checked before anything is sent
(a user id, an end after the start, aware datetimes); the proxy's ``Error`` object
``{"errorCode", "errorMessage"}`` becomes a :class:`TimkitError` with its status.

:func:`accept_scanned` is the last step of AF_10061's QR exchange: after the actor confirmed
the scanned card (:func:`timkit.client.vcard.confirmation`), the card's MXID joins the
Freigabeliste under the display name ``[Name], [Vorname]``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import httpx

from timkit.client.matrix_api import segment
from timkit.client.mxid import invalid, parse_mxid
from timkit.client.openid import EXPIRY_MARGIN, OpenIdToken
from timkit.client.vcard import ContactCard
from timkit.core.errors import Codes, TimkitError

PREFIX = "/tim-contact-mgmt/v1.0.2"
"""Where the Messenger-Proxy serves the API (the yaml's server URL path)."""
CLOCK_SKEW = 60
"""Seconds a window without a start begins before now, so that a Messenger-Proxy whose clock
runs a little behind the client's already applies it."""


@dataclass(frozen=True)
class Contact:
    """One setting of the Freigabeliste: ``mxid`` may invite the actor from ``start`` to
    ``end`` (``None``: open).

    Attributes:
        mxid: the contact's user id.
        display_name: the name the actor gave the contact.
        start: when invitations start being allowed (UTC); ``None`` only before it is sent.
        end: when they stop being allowed (UTC), ``None`` for no end.
    """

    mxid: str
    display_name: str
    start: datetime | None = None
    end: datetime | None = None

    def active(self, now: datetime | None = None) -> bool:
        """Whether the window holds ``now`` (default: the current time)."""
        moment = now or datetime.now(UTC)
        started = self.start is None or self.start <= moment
        return started and (self.end is None or moment <= self.end)


class Contacts:
    """The Freigabeliste of the actor ``user_id``.

    Args:
        http: the client to send with (it trusts the service's TLS certificate).
        base_url: the Messenger-Proxy's client URL (the homeserver base URL of the actor).
        user_id: the actor's MXID (sent as ``Mxid``).
        openid: returns a fresh Matrix OpenID token of the actor (e.g.
            ``TimClient.new_openid_token``; it is called again to renew a refused token).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        user_id: str,
        openid: Callable[[], Awaitable[OpenIdToken]],
    ) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + PREFIX
        self.user_id = user_id
        self._openid = openid
        self._token: OpenIdToken | None = None
        self._lock = asyncio.Lock()

    async def list(self) -> tuple[Contact, ...]:
        """All settings of the actor's Freigabeliste.

        Raises:
            TimkitError: the proxy's refusal (status, ``errorCode``, ``errorMessage``), 502
                when it cannot be reached or answers something else than ``Contacts``.
        """
        body = await self._request("GET", "/contacts")
        items = body.get("contacts", [])
        if not isinstance(items, list):
            raise _malformed("contacts is no list")
        return tuple(_contact(item) for item in items)

    async def get(self, mxid: str) -> Contact:
        """The setting for ``mxid``.

        Raises:
            TimkitError: 400 naming ``mxid`` when it is no user id; 404 when the list holds
                none for it; otherwise as :meth:`list`.
        """
        mxid = parse_mxid(mxid)
        return _contact(await self._request("GET", f"/contacts/{segment(mxid)}"))

    async def add(
        self,
        mxid: str,
        display_name: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Contact:
        """Allow ``mxid`` to invite the actor from ``start`` (``None``: now) to ``end``
        (``None``: no end).

        Raises:
            TimkitError: 400 naming the field (``mxid``, ``start``, ``end``) before sending;
                the proxy's 409 when a setting exists (:meth:`update` it), its 400 when the
                list is full; otherwise as :meth:`list`.
        """
        body = _contact_json(mxid, display_name, start, end)
        return _contact(await self._request("POST", "/contacts", body))

    async def update(
        self,
        mxid: str,
        display_name: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Contact:
        """Replace the setting for ``mxid`` (the whole setting, as with :meth:`add`).

        Raises:
            TimkitError: as :meth:`add`; 404 when the list holds no setting for ``mxid``.
        """
        body = _contact_json(mxid, display_name, start, end)
        return _contact(await self._request("PUT", "/contacts", body))

    async def remove(self, mxid: str) -> None:
        """Delete the setting for ``mxid``.

        Raises:
            TimkitError: 400 naming ``mxid`` when it is no user id; 404 when the list holds
                none for it; otherwise as :meth:`list`.
        """
        mxid = parse_mxid(mxid)
        await self._request("DELETE", f"/contacts/{segment(mxid)}")

    async def _openid_token(self, *, renew: bool = False) -> OpenIdToken:
        """The cached OpenID token, replaced when expiring (or ``renew``)."""
        async with self._lock:
            token = self._token
            if renew or token is None or time.time() >= token.expires_at - EXPIRY_MARGIN:
                token = self._token = await self._openid()
            return token

    async def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send with the actor's token (renewed once on 401) and return the JSON object."""
        token = await self._openid_token()
        response = await self._send(method, path, body, token)
        if response.status_code == 401:
            token = await self._openid_token(renew=True)
            response = await self._send(method, path, body, token)
        if response.status_code >= 400:
            raise _refusal(response)
        if response.status_code == 204:
            return {}
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise _malformed(f"{method} {path} did not answer with a JSON object")
        return answer

    async def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None, token: OpenIdToken
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token.access_token}", "Mxid": self.user_id}
        try:
            return await self.http.request(method, self.url + path, json=body, headers=headers)
        except httpx.HTTPError as e:
            raise TimkitError(
                502,
                Codes.UPSTREAM,
                f"the Messenger-Proxy's contact management cannot be reached: {type(e).__name__}",
            ) from e


async def accept_scanned(
    contacts: Contacts,
    card: ContactCard,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Contact:
    """AF_10061: put the confirmed scanned ``card`` on the Freigabeliste.

    Its MXID may invite the actor from ``start`` (``None``: now) to ``end`` under the display
    name ``[Name], [Vorname]`` (:meth:`ContactCard.display_name`). A contact already on the
    list gets the new name and window.

    Raises:
        TimkitError: 400 naming ``mxid`` when the card is the actor's own; otherwise as
            :meth:`Contacts.add`.
    """
    mxid = parse_mxid(card.mxid)
    if mxid == parse_mxid(contacts.user_id, "user_id"):
        raise invalid("mxid", "the scanned card is the actor's own", "AF_10061")
    try:
        return await contacts.add(mxid, card.display_name(), start, end)
    except TimkitError as e:
        if e.status != 409:
            raise
    return await contacts.update(mxid, card.display_name(), start, end)


def _seconds(value: datetime, field: str) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(field, "must be a timezone-aware datetime")
    seconds = int(value.timestamp())
    if seconds < 0:
        raise invalid(field, "must not be before 1970-01-01T00:00:00Z")
    return seconds


def _contact_json(
    mxid: str, display_name: str, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """The API's ``Contact`` object, checked: ``end`` after ``start`` (default: now)."""
    settings = {
        "start": _seconds(start, "start") if start is not None else int(time.time()) - CLOCK_SKEW,
    }
    if end is not None:
        settings["end"] = _seconds(end, "end")
        if settings["end"] <= settings["start"]:
            raise invalid("end", "must be after start")
    return {"displayName": display_name, "mxid": parse_mxid(mxid), "inviteSettings": settings}


def _contact(document: Any) -> Contact:
    """A ``Contact`` answer of the proxy."""
    if not isinstance(document, dict):
        raise _malformed("a contact is no JSON object")
    mxid, name, settings = (
        document.get("mxid"),
        document.get("displayName"),
        document.get("inviteSettings"),
    )
    if not isinstance(mxid, str) or not isinstance(name, str) or not isinstance(settings, dict):
        raise _malformed("a contact lacks mxid, displayName or inviteSettings")
    start, end = settings.get("start"), settings.get("end")
    if not _is_seconds(start) or not (end is None or _is_seconds(end)):
        raise _malformed("inviteSettings.start/end are no Unix seconds")
    return Contact(
        mxid,
        name,
        datetime.fromtimestamp(start, UTC),
        None if end is None else datetime.fromtimestamp(end, UTC),
    )


def _is_seconds(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**37


def _malformed(what: str) -> TimkitError:
    return TimkitError(502, Codes.UPSTREAM, f"the contact management answered badly: {what}")


def _refusal(response: httpx.Response) -> TimkitError:
    """The proxy's ``Error`` object as a :class:`TimkitError` with the response's status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code, message = body.get("errorCode"), body.get("errorMessage")
        if isinstance(code, str) and isinstance(message, str):
            return TimkitError(response.status_code, code, message)
    return TimkitError(
        response.status_code,
        Codes.UNKNOWN,
        f"the contact management answered {response.status_code}",
    )
