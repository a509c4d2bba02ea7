"""Server-server traffic coming in: stages 1 to 3 of the permission check (seed 002 §3.5.2).

* Stage 1, every request under ``/_matrix/federation/`` and ``/_matrix/media/`` except the
  exempt ones: the ``origin`` of the ``Authorization: X-Matrix`` header must be in the
  federation list (ML-123666; missing header 401 ``M_MISSING_TOKEN``, not listed 403
  ``M_FORBIDDEN``), and a ``destination`` must name this server (401, spec "Request
  Authentication").
* Stages 2 and 3, invites to local users (``PUT /_matrix/federation/v{1,2}/invite/…``):
  allowed if the invitee's Freigabeliste holds the inviter with a valid time window (stage 2),
  else if the Registrierungs-Dienst's stage-3 check allows (``POST /vzd/invite``), else 403
  (ML-132864). When stage 3 cannot be asked the invite is refused (502, fail closed).

Exempt from stage 1 (they carry no X-Matrix header): ``/_matrix/federation/v1/openid/userinfo``
(the VZD-FHIR-Directory checks Matrix-OpenID-Tokens with it), ``/_matrix/federation/v1/version``,
``/_matrix/key/v2/*`` and ``/.well-known/matrix/server`` (seed 002 §4.3.3.1.2,
``MessengerService.adoc`` ".well-known & userinfo").

Requests are relayed byte-identical: the proxy only reads them (signatures cover method, URI,
origin, destination and body); the homeserver still verifies the signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from timkit.core.errors import Codes, TimkitError
from timkit.proxy.gate import DomainGate, server_name_of
from timkit.proxy.xmatrix import parse_x_matrix

INVITE = re.compile(r"^/_matrix/federation/v([12])/invite/([^/]+)/([^/]+)$")
TRANSACTION = re.compile(r"^/_matrix/federation/v1/send/[^/]+$")
EVENTS = "AF_10062"
"""Use case of an inbound transaction: events between organisations."""
EXEMPT_PREFIXES = ("/_matrix/key/",)
EXEMPT_PATHS = frozenset(
    {"/_matrix/federation/v1/openid/userinfo", "/_matrix/federation/v1/version"}
)

ORIGIN_RULE = "ML-123666"
"""AF_10062: the receiver's proxy checks the sender's domain."""
INVITE_RULE = "ML-132864"
"""AF_10061: all three stages are checked for invites from outside the organisation."""


def is_exempt(path: str) -> bool:
    """Whether ``path`` is served without the stage-1 origin check."""
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


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
        raise TimkitError(401, "M_UNAUTHORIZED", str(e), requirement=ORIGIN_RULE) from None
    if params is None:
        raise TimkitError(
            401,
            "M_UNAUTHORIZED",
            "the Authorization header is not X-Matrix",
            requirement=ORIGIN_RULE,
        )
    origin = params.get("origin", "").lower()
    if not origin:
        raise TimkitError(
            401, "M_UNAUTHORIZED", "X-Matrix header without origin", requirement=ORIGIN_RULE
        )
    destination = params.get("destination")
    if destination is not None and destination.lower() != server_name:
        raise TimkitError(
            401, "M_UNAUTHORIZED", f"X-Matrix destination {destination} is not this server"
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
