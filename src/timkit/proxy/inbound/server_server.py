"""Server-server traffic coming in: stages 1 to 3 of the permission check (seed 002 §3.5.2).

* Stage 1, every request under ``/_matrix/federation/`` and ``/_matrix/media/`` except the
  exempt ones: the ``origin`` of the ``Authorization: X-Matrix`` header must be in the
  federation list (ML-123666; missing header 401 ``M_MISSING_TOKEN``, not listed 403
  ``M_FORBIDDEN``), and a ``destination`` must name this server (401, spec "Request
  Authentication").
* Stages 2 and 3, invites to local users (``PUT /_matrix/federation/v{1,2}/invite/…``,
  however the path is encoded: an event id may hold an encoded ``/``): allowed if the
  invitee's Freigabeliste holds the inviter with a valid time window (stage 2), else if the
  Registrierungs-Dienst's stage-3 check allows (``POST /vzd/invite``), else 403
  (ML-132864). When stage 3 cannot be asked the invite is refused (502, fail closed).
* Invite PDUs in a transaction (``PUT /_matrix/federation/v1/send/{txnId}``) whose state
  key is a local user pass stages 2 and 3 as well, else the transaction is refused: a server
  already in a room could hand Synapse such an invite directly, past ``/invite``.
* Third-party invites (``exchange_third_party_invite``, ``3pid/onbind``) are refused: the
  TI-Messenger has none, and stage 2/3 could not be asked for an e-mail address.
* ``make_{join,knock,leave}`` / ``send_{join,knock,leave}``: the member must be a user of
  the origin (a server can only join, knock or leave for its own users), the event's
  membership must be the one the path names. Joins need no stage 2/3: the joining user
  was invited (checked at its own proxy when our user invited it) or the room is public.

Which path gets which check is :mod:`timkit.proxy.inbound.endpoints`' table.

Exempt from stage 1 (they carry no X-Matrix header): ``/_matrix/federation/v1/openid/userinfo``
(the VZD-FHIR-Directory checks Matrix-OpenID-Tokens with it), ``/_matrix/federation/v1/version``,
``/_matrix/key/v2/*`` and ``/.well-known/matrix/server`` (seed 002 §4.3.3.1.2,
``MessengerService.adoc`` ".well-known & userinfo").

Requests are relayed byte-identical: the proxy only reads them (signatures cover method, URI,
origin, destination and body); the homeserver still verifies the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timkit.core.errors import Codes, TimkitError
from timkit.core.request_target import RequestTarget
from timkit.proxy.domain_gate import DomainGate, server_name_of
from timkit.proxy.xmatrix import parse_x_matrix

EVENTS = "AF_10062"
"""Use case of an inbound transaction: events between organisations."""
TRANSACTION_BODY = 16 * 1024 * 1024
"""Largest transaction read to look for invite PDUs (Synapse sends at most 50 PDUs of at most
64 KiB and 100 EDUs); larger gets 413."""
EXEMPT_PATHS = frozenset(
    {
        ("_matrix", "federation", "v1", "openid", "userinfo"),
        ("_matrix", "federation", "v1", "version"),
    }
)

ORIGIN_RULE = "ML-123666"
"""AF_10062: the receiver's proxy checks the sender's domain."""
INVITE_RULE = "ML-132864"
"""AF_10061: all three stages are checked for invites from outside the organisation."""


def is_exempt(target: RequestTarget) -> bool:
    """Whether ``target`` is served without the stage-1 origin check (decoded segments)."""
    return target.segments in EXEMPT_PATHS or target.segments[:2] == ("_matrix", "key")


async def check_origin(gate: DomainGate, authorization: str | None, server_name: str) -> str:
    """Stage 1 for one inbound federation request; the origin server name.

    Raises:
        TimkitError: 401 without (or with a malformed) X-Matrix header or with a foreign
            destination; 403/503 from the gate.
    """
    if not authorization:
        raise TimkitError(
            401,
            Codes.MISSING_TOKEN,
            "missing X-Matrix authorization header: the sender's domain cannot be checked",
            requirement=ORIGIN_RULE,
        )
    try:
        params = parse_x_matrix(authorization)
    except ValueError as e:
        raise TimkitError(401, Codes.UNAUTHORIZED, str(e), requirement=ORIGIN_RULE) from None
    if params is None:
        raise TimkitError(
            401,
            Codes.UNAUTHORIZED,
            "the Authorization header is not X-Matrix",
            requirement=ORIGIN_RULE,
        )
    origin = params.get("origin", "").lower()
    if not origin:
        raise TimkitError(
            401, Codes.UNAUTHORIZED, "X-Matrix header without origin", requirement=ORIGIN_RULE
        )
    destination = params.get("destination")
    if destination is not None and destination.lower() != server_name:
        raise TimkitError(
            401, Codes.UNAUTHORIZED, f"X-Matrix destination {destination} is not this server"
        )
    await gate.recheck(origin, ORIGIN_RULE)
    return origin


@dataclass(frozen=True)
class Invite:
    """A federation invite of a local user.

    Attributes:
        room_id: the room.
        inviter: the event's ``sender``.
        invitee: the event's ``state_key`` (a user of this server).
        is_direct: whether the invite marks a 1:1 chat.
    """

    room_id: str
    inviter: str
    invitee: str
    is_direct: bool


def parse_invite(version: str, body: dict[str, Any], origin: str, server_name: str) -> Invite:
    """The invite in a ``/v1`` (bare event) or ``/v2`` (``{"event": …}``) invite body.

    Raises:
        TimkitError: 400 for a malformed event; 403 when the inviter is not of ``origin``
            or the invitee is not a user of this server.
    """
    event = body.get("event") if version == "2" else body
    if not isinstance(event, dict):
        raise TimkitError(400, Codes.BAD_JSON, "invite without an event")
    room_id, sender, state_key = event.get("room_id"), event.get("sender"), event.get("state_key")
    content = event.get("content")
    if not all(isinstance(v, str) for v in (room_id, sender, state_key)) or not isinstance(
        content, dict
    ):
        raise TimkitError(400, Codes.BAD_JSON, "invite event needs room_id, sender, state_key")
    assert isinstance(room_id, str)
    assert isinstance(sender, str)
    assert isinstance(state_key, str)
    if server_name_of(sender) != origin:
        raise TimkitError(
            403,
            Codes.FORBIDDEN,
            f"inviter {sender} is not a user of {origin}",
            requirement=ORIGIN_RULE,
        )
    if server_name_of(state_key) != server_name:
        raise TimkitError(403, Codes.FORBIDDEN, f"{state_key} is not a user of {server_name}")
    return Invite(room_id, sender, state_key, content.get("is_direct") is True)


def refused(invite: Invite, reason: str) -> TimkitError:
    """The 403 for an invite no stage allowed."""
    return TimkitError(
        403,
        Codes.FORBIDDEN,
        f"{invite.inviter} may not invite {invite.invitee}: not in the invitee's Freigabeliste "
        f"(Stufe 2) and {reason} (Stufe 3)",
        requirement=INVITE_RULE,
    )


def third_party_refused() -> TimkitError:
    """The 403 for a third-party invite arriving over federation."""
    return TimkitError(
        403,
        Codes.FORBIDDEN,
        "third-party invites are not allowed in the TI-Messenger: stages 2 and 3 cannot be "
        "checked for them",
        requirement=INVITE_RULE,
    )


def unchecked(path: str) -> TimkitError:
    """The 500 for a federation endpoint the table names without a check (fail closed)."""
    return TimkitError(500, Codes.UNKNOWN, f"no check for {path} in the Messenger-Proxy")


def check_member_of_origin(user_id: str, origin: str) -> None:
    """``user_id`` must be a user of the requesting server ``origin``.

    Raises:
        TimkitError: 400 for no user id, 403 citing ML-123666 for another server's user.
    """
    if "/" in user_id or server_name_of(user_id) != origin:
        raise TimkitError(
            403,
            Codes.FORBIDDEN,
            f"{user_id[:200]} is not a user of {origin}: a server changes only its own "
            "users' membership",
            requirement=ORIGIN_RULE,
        )


def check_membership_event(
    event: dict[str, Any], membership: str, room_id: str, origin: str
) -> None:
    """A ``send_{join,knock,leave}`` event: the origin's user changing its own membership.

    Raises:
        TimkitError: 400 for a malformed event or another room or membership than the
            path names; 403 when the member is not a user of ``origin`` or not the sender.
    """
    sender, state_key = event.get("sender"), event.get("state_key")
    content = event.get("content")
    if (
        event.get("type") != "m.room.member"
        or not isinstance(sender, str)
        or not isinstance(content, dict)
        or content.get("membership") != membership
        or event.get("room_id") != room_id
    ):
        raise TimkitError(
            400,
            Codes.BAD_JSON,
            f"send_{membership} needs an m.room.member event with membership {membership} "
            "in the path's room",
        )
    if state_key != sender:
        raise TimkitError(
            403,
            Codes.FORBIDDEN,
            f"{sender[:200]} cannot change the membership of another user",
            requirement=ORIGIN_RULE,
        )
    check_member_of_origin(sender, origin)


def invites_in_transaction(transaction: dict[str, Any], server_name: str) -> list[Invite]:
    """The invites of users of ``server_name`` among a transaction's PDUs.

    PDUs that are no ``m.room.member`` invite of a local user, or malformed ones (Synapse
    rejects those itself), are skipped.
    """
    pdus = transaction.get("pdus")
    invites: list[Invite] = []
    for pdu in pdus if isinstance(pdus, list) else ():
        if not isinstance(pdu, dict) or pdu.get("type") != "m.room.member":
            continue
        content, state_key = pdu.get("content"), pdu.get("state_key")
        room_id, sender = pdu.get("room_id"), pdu.get("sender")
        if not isinstance(content, dict) or content.get("membership") != "invite":
            continue
        if not isinstance(state_key, str) or state_key.partition(":")[2].lower() != server_name:
            continue
        if not isinstance(room_id, str) or not isinstance(sender, str):
            raise TimkitError(400, Codes.BAD_JSON, "an invite PDU needs room_id and sender")
        invites.append(Invite(room_id, sender, state_key, content.get("is_direct") is True))
    return invites
