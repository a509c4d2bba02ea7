"""Client-server traffic: stage 1 of the permission check on invites (seed 002 §3.5.1.1).

Which request gets which check is :mod:`timkit.proxy.inbound.endpoints`' table (every
spelling: all version prefixes, ``PUT …/{txnId}`` variants, percent-encodings); the checks:

* invites (``…/rooms/{roomId}/invite``, and a ``m.room.member`` state event with
  ``membership: invite``, whose state key is the invitee): the invitee's domain must be in
  the federation list (AF_10104 ML-129415, AF_10064); a third-party invite (``medium`` /
  ``address``) is refused; a user other than the partner may not be invited into a 1:1 chat
  (a room the proxy saw created with ``is_direct`` or received as a direct invite: gematik
  testsuite TIM_11_AF_10104 07.07/07.08).
* ``createRoom``: ``invite`` may hold at most one user id, each invitee's domain must be in
  the list, ``invite_3pid`` must be empty and ``initial_state`` may hold no membership or
  third-party-invite event (seed 002 §4.3.3.1.1). A successful ``createRoom`` with
  ``is_direct`` and one invitee is recorded as a 1:1 chat.
* joins and knocks are the requesting user's own; a join with ``third_party_signed``
  (redeeming a 3PID invite) is refused.
* ``pushers/set``: an HTTP pusher's ``data.url`` must be one of the provider's Push-Gateway
  notify URLs (``inbound.push_gateways``, compared after URL normalisation: scheme and host
  lower-case, default port made explicit); ``kind: null`` (deletion) is allowed, every other
  kind refused (seed 002 §4.3.2: notifications go through the provider's Push-Gateway).

The user is the one the homeserver authenticates; the proxy only asks Synapse who it is
(``whoami``) where the check needs it. Refusals are 403 ``M_FORBIDDEN`` naming the rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import orjson

from timkit.core import jsonbody
from timkit.core.errors import Codes, TimkitError
from timkit.proxy.domain_gate import DomainGate, server_name_of

WITHIN = "AF_10104"
"""Use case: inviting a member of the own organisation (all invitees on this server)."""
OUTSIDE = "AF_10061"
"""Use case: inviting someone outside the organisation."""
INVITE_RULE = "ML-129415"
"""AF_10104: the proxy refuses an invite whose domain is not in the federation."""
CREATE_ROOM_RULE = "gemSpec_TI-Messenger-Dienst §4.3.3.1.1"
"""createRoom: ``invite`` with at most one element."""
DIRECT_RULE = "AF_10104"
"""A 1:1 chat holds its two users only (testsuite TIM_11_AF_10104 07.07/07.08)."""
THIRD_PARTY_RULE = "gemSpec_TI-Messenger-Dienst §3.5.1.1"
"""Invites name Matrix users whose domain can be checked; third-party ids cannot."""
PERMISSION_RULE = "gemSpec_TI-Messenger-Dienst §3.5"
"""The permission concept: membership changes only where the proxy can check them."""
PUSH_RULE = "gemSpec_TI-Messenger-Dienst §4.3.2 (provider's Push-Gateway only)"
"""Pushers deliver to the provider's Push-Gateway and nowhere else."""
MEMBER = "m.room.member"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
MEMBERSHIPS = ("invite", "join", "knock", "leave", "ban")
"""The ``membership`` values Synapse accepts in a ``m.room.member`` state event."""
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_json_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object.

    Raises:
        TimkitError: 400 ``M_NOT_JSON`` naming why it cannot be parsed (not UTF-8, not JSON
            and where, nested deeper than 1024 levels), ``M_BAD_JSON`` when it is no object
            (``timkit.core.jsonbody``).
    """
    try:
        return jsonbody.parse_json_object(body)
    except jsonbody.JsonBodyError as e:
        raise e.to_error(jsonbody.MATRIX_CODES) from None


def forbidden(message: str, rule: str) -> TimkitError:
    """The 403 ``M_FORBIDDEN`` for a refused request, citing ``rule``."""
    return TimkitError(403, Codes.FORBIDDEN, message, requirement=rule)


async def check_invite(
    gate: DomainGate, body: dict[str, Any], direct_pair: tuple[str, str] | None
) -> None:
    """Check a ``/rooms/{roomId}/invite`` body (see the module docstring).

    Args:
        gate: stage 1.
        body: the parsed request body.
        direct_pair: the two users of the room if it is a 1:1 chat, else None.

    Raises:
        TimkitError: 400 for a malformed body, 403 naming the rule when refused.
    """
    if "medium" in body or "address" in body or "id_server" in body:
        raise forbidden("third-party invites are not allowed in the TI-Messenger", THIRD_PARTY_RULE)
    user_id = body.get("user_id")
    if not isinstance(user_id, str):
        raise TimkitError(400, Codes.BAD_JSON, "invite needs a 'user_id' string")
    if direct_pair is not None and user_id not in direct_pair:
        raise forbidden(
            f"{user_id} cannot be invited: the room is a 1:1 chat of {direct_pair[0]} and "
            f"{direct_pair[1]}",
            DIRECT_RULE,
        )
    await gate.recheck(server_name_of(user_id), INVITE_RULE)


async def check_create_room(gate: DomainGate, body: dict[str, Any]) -> str | None:
    """Check a ``createRoom`` body; the invitee if it creates a 1:1 chat, else None.

    Raises:
        TimkitError: 400 for a malformed body, 403 naming the rule when refused.
    """
    invite_3pid = body.get("invite_3pid")
    if invite_3pid:
        raise forbidden("createRoom with 'invite_3pid' is not allowed", THIRD_PARTY_RULE)
    initial_state = body.get("initial_state", [])
    if not isinstance(initial_state, list):
        raise TimkitError(400, Codes.BAD_JSON, "createRoom 'initial_state' must be a list")
    for event in initial_state:
        kind = event.get("type") if isinstance(event, dict) else None
        if kind in (MEMBER, THIRD_PARTY_INVITE):
            raise forbidden(
                f"createRoom 'initial_state' may not hold {kind} events: invitees go in "
                "'invite', where they are checked",
                CREATE_ROOM_RULE,
            )
    invite = body.get("invite", [])
    if not isinstance(invite, list) or not all(isinstance(u, str) for u in invite):
        raise TimkitError(400, Codes.BAD_JSON, "createRoom 'invite' must be a list of user ids")
    if len(invite) > 1:
        raise forbidden(
            f"createRoom may invite at most one user, got {len(invite)}", CREATE_ROOM_RULE
        )
    for user_id in invite:
        await gate.recheck(server_name_of(user_id), INVITE_RULE)
    if invite and body.get("is_direct") is True:
        return str(invite[0])
    return None


def room_id_of(status: int, body: bytes) -> str | None:
    """The ``room_id`` of a successful ``createRoom`` response, else None."""
    if status != 200:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    room_id = document.get("room_id") if isinstance(document, dict) else None
    return room_id if isinstance(room_id, str) else None


def member_state_membership(content: dict[str, Any], state_key: str) -> str:
    """The ``membership`` of a ``m.room.member`` state event the client wants to send.

    Raises:
        TimkitError: 403 for a third-party invite; 400 when the state key is no user id
            or the membership is not one Synapse accepts.
    """
    if "third_party_invite" in content:
        raise forbidden(
            "membership events with 'third_party_invite' are not allowed", THIRD_PARTY_RULE
        )
    if "/" in state_key:
        raise TimkitError(400, Codes.INVALID_PARAM, "the state key of a membership is a user id")
    server_name_of(state_key)
    membership = content.get("membership")
    if membership not in MEMBERSHIPS:
        raise TimkitError(
            400, Codes.INVALID_PARAM, f"membership must be one of {', '.join(MEMBERSHIPS)}"
        )
    return str(membership)


def check_own_membership(body: bytes) -> None:
    """A join or knock body (may be empty): no ``third_party_signed``.

    Raises:
        TimkitError: 400 for a body that is not a JSON object, 403 for a 3PID join.
    """
    if not body.strip():
        return
    if "third_party_signed" in parse_json_object(body):
        raise forbidden("joining through a third-party invite is not allowed", THIRD_PARTY_RULE)


def normalise_url(url: str) -> tuple[str, str, int, str, str] | None:
    """``url`` as (scheme, host, port, path, query) for comparison; None when it is no plain
    HTTP(S) URL (user info, fragment, bad port or no host)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.password is not None or parts.fragment or "#" in url:
        return None
    return (
        scheme,
        parts.hostname.lower(),
        port if port is not None else _DEFAULT_PORTS[scheme],
        parts.path,
        parts.query,
    )


def push_gateway_set(urls: Iterable[str]) -> frozenset[tuple[str, str, int, str, str]]:
    """The configured Push-Gateway notify URLs, normalised (:func:`normalise_url`).

    Raises:
        ValueError: for a configured URL that is no plain HTTP(S) URL.
    """
    normalised = set()
    for url in urls:
        parts = normalise_url(url)
        if parts is None:
            raise ValueError(f"push gateway URL {url!r} is no plain http(s) URL")
        normalised.add(parts)
    return frozenset(normalised)


def check_pusher(body: dict[str, Any], gateways: frozenset[tuple[str, str, int, str, str]]) -> None:
    """A ``pushers/set`` body: HTTP pushers only to the provider's Push-Gateway.

    Raises:
        TimkitError: 403 naming :data:`PUSH_RULE` when the pusher would deliver elsewhere.
    """
    kind = body.get("kind")
    if "kind" in body and kind is None:
        return  # deletion of the pusher (app_id, pushkey)
    if kind != "http":
        raise forbidden(f"pusher kind {str(kind)[:40]!r} is not allowed, only 'http'", PUSH_RULE)
    data = body.get("data")
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str):
        raise forbidden("an http pusher needs data.url, the Push-Gateway's notify URL", PUSH_RULE)
    if normalise_url(url) not in gateways:
        raise forbidden(
            f"pusher URL {url[:200]!r} is not one of this provider's Push-Gateways", PUSH_RULE
        )
