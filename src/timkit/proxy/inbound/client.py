"""Client-server traffic: stage 1 of the permission check on invites (seed 002 §3.5.1.1).

Checked requests (everything else is relayed untouched, streamed):

* ``POST /_matrix/client/{r0,v3}/rooms/{roomId}/invite``: the invitee's domain must be in
  the federation list (AF_10104 ML-129415, AF_10064); a third-party invite (``medium`` /
  ``address``) is refused; a user other than the partner may not be invited into a 1:1 chat
  (a room the proxy saw created with ``is_direct`` or received as a direct invite: gematik
  testsuite TIM_11_AF_10104 07.07/07.08).
* ``POST /_matrix/client/{r0,v3}/createRoom``: ``invite`` may hold at most one user id, each
  invitee's domain must be in the list, ``invite_3pid`` must be empty (seed 002
  §4.3.3.1.1). A successful ``createRoom`` with ``is_direct`` and one invitee is recorded as
  a 1:1 chat.

The user is the one the homeserver authenticates; the proxy does not look at access tokens
for these checks (Synapse refuses unauthenticated requests anyway). Refusals are 403
``M_FORBIDDEN`` naming the rule.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from timkit.core.errors import Codes, TimkitError
from timkit.proxy.gate import DomainGate, server_name_of

INVITE = re.compile(r"^/_matrix/client/(?:r0|v3)/rooms/([^/]+)/invite$")
CREATE_ROOM = re.compile(r"^/_matrix/client/(?:r0|v3)/createRoom$")

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


def parse_json_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object.

    Raises:
        TimkitError: 400 ``M_NOT_JSON``/``M_BAD_JSON`` when it is none.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise TimkitError(400, "M_NOT_JSON", "the request body is not JSON") from e
    if not isinstance(document, dict):
        raise TimkitError(400, Codes.BAD_JSON, "the request body is not a JSON object")
    return document


def _forbidden(message: str, rule: str) -> TimkitError:
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
        raise _forbidden(
            "third-party invites are not allowed in the TI-Messenger", THIRD_PARTY_RULE
        )
    user_id = body.get("user_id")
    if not isinstance(user_id, str):
        raise TimkitError(400, Codes.BAD_JSON, "invite needs a 'user_id' string")
    if direct_pair is not None and user_id not in direct_pair:
        raise _forbidden(
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
        raise _forbidden("createRoom with 'invite_3pid' is not allowed", THIRD_PARTY_RULE)
    invite = body.get("invite", [])
    if not isinstance(invite, list) or not all(isinstance(u, str) for u in invite):
        raise TimkitError(400, Codes.BAD_JSON, "createRoom 'invite' must be a list of user ids")
    if len(invite) > 1:
        raise _forbidden(
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
