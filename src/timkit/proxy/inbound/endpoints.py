"""Every endpoint behind the inbound listener that can change room membership (issue 14).

The single source of truth for what the Messenger-Proxy checks on its public listener:
:data:`ENDPOINTS` lists, for the pinned Synapse's servlet registrations (client, admin and
federation API), every path pattern whose servlet can invite, join, knock, remove or
otherwise change who is in a room, plus the pusher registration, and the :class:`Check`
the proxy applies to it. ``docs/membership-endpoints.md`` renders this table
(:func:`markdown_table`); ``tests/proxy/inbound/test_endpoints.py`` fails when the
installed Synapse registers a membership-changing pattern that the table lacks.

Matching works on :func:`timkit.core.request_target.parse_target`'s segments (split before
decoding, so ``%2F`` never moves a segment boundary and ``invit%65`` is ``invite``), ignores
the method (a ``PUT createRoom/`` is Synapse's ``createRoom/{txnId}`` with an empty
transaction id, so every spelling of a path gets the same check) and, under
``/_matrix/client/``, the version prefix: a membership path under a prefix Synapse does
not know (anything but ``r0``, ``v1``, ``v3``, ``api/v1``, ``unstable`` and
``unstable/<feature>``) is refused instead of being relayed unchecked to a future Synapse
that might serve it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from timkit.core.errors import Codes, TimkitError
from timkit.core.request_target import RequestTarget

__all__ = [
    "CLIENT_VERSIONS",
    "ENDPOINTS",
    "UNAMBIGUOUS_RULE",
    "Api",
    "Check",
    "Compiled",
    "Endpoint",
    "Route",
    "client_tails",
    "compile_parts",
    "markdown_table",
    "match_parts",
    "route",
]

UNAMBIGUOUS_RULE = "Messenger-Proxy: unambiguous request (issue 14)"
"""The rule an unparsable target, a duplicated security header or an id holding ``/`` breaks:
the proxy must read a request exactly as its Synapse will."""
CLIENT_VERSIONS = frozenset({"r0", "v1", "v3", "unstable", "api/v1"})
"""Version prefixes of Synapse's client API (``client_patterns``); ``unstable/<feature>``
(one more segment) is known too."""
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class Api(StrEnum):
    """Which of Synapse's APIs a path belongs to."""

    CLIENT = "client"
    """``/_matrix/client/{version}/…``: :attr:`Endpoint.path` is the part after the version."""
    ADMIN = "admin"
    """``/_synapse/admin/…`` (served on Synapse's client listener): full path."""
    FEDERATION = "federation"
    """``/_matrix/federation/…``: full path."""


class Check(StrEnum):
    """What the proxy does with a request to an endpoint (see ``docs/membership-endpoints.md``)."""

    INVITE = "invite"
    """Stage 1 for the invitee's domain (ML-129415), no 3PID invite, no third user in a 1:1
    chat (AF_10104); recorded as AF_10104/AF_10061."""
    CREATE_ROOM = "createRoom"
    """``invite`` ≤ 1 user, each domain in the list, no ``invite_3pid``, no membership or 3PID
    event in ``initial_state``; a 1:1 chat is recorded."""
    MEMBER_STATE = "member state"
    """``m.room.member``: ``invite`` is an invite of the state key (as :attr:`INVITE`),
    ``join``/``knock`` only for the requesting user, ``leave``/``ban`` relayed;
    ``m.room.third_party_invite`` refused; other event types relayed."""
    MEMBER_SEND = "member send"
    """``m.room.member`` as a message event: refused (Synapse would fail on it); other types
    relayed."""
    OWN_MEMBERSHIP = "own membership"
    """Joins or knocks the requesting user only; a ``third_party_signed`` (3PID) join is
    refused."""
    REMOVAL = "removal"
    """Only removes members or keeps them out (leave, kick, ban, unban, forget): relayed."""
    UPGRADE = "upgrade"
    """Relayed: the new room gets invites only for local users already invited to the old
    one (Synapse copies no remote or 3PID invites)."""
    PUSHER = "pusher"
    """``kind: "http"`` only to a configured Push-Gateway notify URL; ``kind: null``
    (deletion) allowed; other kinds refused."""
    REFUSED = "refused"
    """Never relayed from the public listener (admin operations use Synapse's loopback
    port)."""
    THIRD_PARTY = "third party"
    """Refused: the TI-Messenger has no third-party (3PID) invites (§3.5.1.1)."""
    FEDERATION_INVITE = "federation invite"
    """Stages 1 to 3 (ML-123666, ML-132864): the invitee's Freigabeliste, else the RD's
    directory check; recorded as AF_10061."""
    FEDERATION_MEMBERSHIP = "federation membership"
    """Stage 1, and the member is a user of the X-Matrix origin (``make_*``: the path's user;
    ``send_*``: the event's sender and state key, membership as the path says)."""
    TRANSACTION = "transaction"
    """Stage 1; an invite PDU of a local user passes stages 2 and 3 as at ``/invite``;
    recorded as AF_10062."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One path pattern Synapse registers and the check the proxy applies to it.

    Attributes:
        api: the API the path belongs to.
        methods: the methods Synapse serves on it (documentation: matching ignores them).
        path: segment pattern, ``{name}`` capturing one decoded segment; for the client API
            the part after the version prefix.
        servlet: Synapse's servlet class.
        check: what the proxy does.
        no_slash: captured ids that cannot hold a ``/`` (room, user and transaction ids;
            event ids can): a request with an encoded ``/`` there is refused.
    """

    api: Api
    methods: tuple[str, ...]
    path: str
    servlet: str
    check: Check
    no_slash: tuple[str, ...] = ()

    @property
    def parts(self) -> tuple[str, ...]:
        """:attr:`path` split into segments."""
        return tuple(self.path[1:].split("/"))

    @property
    def full_path(self) -> str:
        """The path as documented (client paths with a ``{version}`` prefix)."""
        if self.api is Api.CLIENT:
            return "/_matrix/client/{version}" + self.path
        return self.path


def _client(
    methods: str, path: str, servlet: str, check: Check, *no_slash: str
) -> tuple[Endpoint, ...]:
    """``path`` for ``methods``; with ``+txn`` among them also ``PUT path/{txn_id}``."""
    plain = tuple(m for m in methods.split() if m != "+txn")
    made = [Endpoint(Api.CLIENT, plain, path, servlet, check, no_slash)]
    if "+txn" in methods.split():
        made.append(
            Endpoint(
                Api.CLIENT, ("PUT",), path + "/{txn_id}", servlet, check, (*no_slash, "txn_id")
            )
        )
    return tuple(made)


_ROOM = ("room_id",)
_MEMBERSHIP = "RoomMembershipRestServlet"

ENDPOINTS: tuple[Endpoint, ...] = (
    # -- client-server API ----------------------------------------------------------------
    *_client("POST +txn", "/rooms/{room_id}/invite", _MEMBERSHIP, Check.INVITE, *_ROOM),
    *_client("POST +txn", "/rooms/{room_id}/join", _MEMBERSHIP, Check.OWN_MEMBERSHIP, *_ROOM),
    *(
        endpoint
        for action in ("leave", "kick", "ban", "unban")
        for endpoint in _client(
            "POST +txn", f"/rooms/{{room_id}}/{action}", _MEMBERSHIP, Check.REMOVAL, *_ROOM
        )
    ),
    *_client("POST +txn", "/createRoom", "RoomCreateRestServlet", Check.CREATE_ROOM),
    *_client("POST +txn", "/join/{room_identifier}", "JoinRoomAliasServlet", Check.OWN_MEMBERSHIP),
    *_client("POST", "/knock/{room_identifier}", "KnockRoomAliasServlet", Check.OWN_MEMBERSHIP),
    *_client(
        "GET PUT",
        "/rooms/{room_id}/state/{event_type}/{state_key}",
        "RoomStateEventRestServlet",
        Check.MEMBER_STATE,
        *_ROOM,
    ),
    *_client(
        "GET PUT",
        "/rooms/{room_id}/state/{event_type}",
        "RoomStateEventRestServlet",
        Check.MEMBER_STATE,
        *_ROOM,
    ),
    *_client(
        "POST +txn",
        "/rooms/{room_id}/send/{event_type}",
        "RoomSendEventRestServlet",
        Check.MEMBER_SEND,
        *_ROOM,
    ),
    *_client(
        "POST +txn", "/rooms/{room_id}/forget", "RoomForgetRestServlet", Check.REMOVAL, *_ROOM
    ),
    *_client("POST", "/rooms/{room_id}/upgrade", "RoomUpgradeRestServlet", Check.UPGRADE, *_ROOM),
    *_client("POST", "/pushers/set", "PushersSetRestServlet", Check.PUSHER),
    # -- Synapse's admin API (on the client listener) --------------------------------------
    Endpoint(
        Api.ADMIN,
        ("POST",),
        "/_synapse/admin/v1/join/{room_identifier}",
        "JoinRoomAliasServlet",
        Check.REFUSED,
    ),
    Endpoint(
        Api.ADMIN,
        ("POST",),
        "/_synapse/admin/v1/rooms/{room_identifier}/make_room_admin",
        "MakeRoomAdminRestServlet",
        Check.REFUSED,
    ),
    Endpoint(
        Api.ADMIN,
        ("GET", "DELETE"),
        "/_synapse/admin/v1/rooms/{room_id}",
        "RoomRestServlet",
        Check.REFUSED,
    ),
    Endpoint(
        Api.ADMIN,
        ("DELETE",),
        "/_synapse/admin/v2/rooms/{room_id}",
        "RoomRestV2Servlet",
        Check.REFUSED,
    ),
    Endpoint(
        Api.ADMIN,
        ("POST",),
        "/_synapse/admin/v1/send_server_notice",
        "SendServerNoticeServlet",
        Check.REFUSED,
    ),
    Endpoint(
        Api.ADMIN,
        ("PUT",),
        "/_synapse/admin/v1/send_server_notice/{txn_id}",
        "SendServerNoticeServlet",
        Check.REFUSED,
    ),
    Endpoint(
        Api.ADMIN,
        ("POST",),
        "/_synapse/admin/v1/deactivate/{target_user_id}",
        "DeactivateAccountRestServlet",
        Check.REFUSED,
    ),
    # -- server-server API -----------------------------------------------------------------
    *(
        Endpoint(
            Api.FEDERATION,
            ("PUT",),
            f"/_matrix/federation/v{v}/invite/{{room_id}}/{{event_id}}",
            f"FederationV{v}InviteServlet",
            Check.FEDERATION_INVITE,
            _ROOM,
        )
        for v in (1, 2)
    ),
    Endpoint(
        Api.FEDERATION,
        ("PUT",),
        "/_matrix/federation/v1/exchange_third_party_invite/{room_id}",
        "FederationThirdPartyInviteExchangeServlet",
        Check.THIRD_PARTY,
    ),
    Endpoint(
        Api.FEDERATION,
        ("POST",),
        "/_matrix/federation/v1/3pid/onbind",
        "On3pidBindServlet",
        Check.THIRD_PARTY,
    ),
    *(
        Endpoint(
            Api.FEDERATION,
            ("GET",),
            f"/_matrix/federation/v1/make_{kind}/{{room_id}}/{{user_id}}",
            f"FederationMake{kind.capitalize()}Servlet",
            Check.FEDERATION_MEMBERSHIP,
            ("room_id", "user_id"),
        )
        for kind in ("join", "knock", "leave")
    ),
    *(
        Endpoint(
            Api.FEDERATION,
            ("PUT",),
            f"/_matrix/federation/v{v}/send_{kind}/{{room_id}}/{{event_id}}",
            f"FederationV{v}Send{kind.capitalize()}Servlet",
            Check.FEDERATION_MEMBERSHIP,
            _ROOM,
        )
        for v, kind in ((1, "join"), (2, "join"), (1, "knock"), (1, "leave"), (2, "leave"))
    ),
    Endpoint(
        Api.FEDERATION,
        ("PUT",),
        "/_matrix/federation/v1/send/{transaction_id}",
        "FederationSendServlet",
        Check.TRANSACTION,
        ("transaction_id",),
    ),
)


@dataclass(frozen=True, slots=True)
class Route:
    """A request matched to an :class:`Endpoint`.

    Attributes:
        endpoint: the endpoint.
        params: the captured, decoded segments by name.
        version: the client API version prefix (``v3``, ``unstable/…``); None otherwise.
    """

    endpoint: Endpoint
    params: dict[str, str]
    version: str | None = None

    @property
    def check(self) -> Check:
        """The endpoint's check."""
        return self.endpoint.check


Compiled = tuple[tuple[str | None, str], ...]
"""A pattern as (literal, "") or (None, placeholder name) per segment."""


def compile_parts(parts: tuple[str, ...]) -> Compiled:
    """A segment pattern (``("rooms", "{room_id}", "send")``) compiled for :func:`match_parts`."""
    compiled: list[tuple[str | None, str]] = []
    for part in parts:
        placeholder = _PLACEHOLDER.fullmatch(part)
        compiled.append((None, placeholder.group(1)) if placeholder else (part, ""))
    return tuple(compiled)


def match_parts(pattern: Compiled, segments: tuple[str, ...]) -> dict[str, str] | None:
    """The placeholders ``segments`` fill in ``pattern`` by name, or None when they do not
    match it (literal segments compared exactly, one decoded segment per placeholder)."""
    if len(pattern) != len(segments):
        return None
    captured: dict[str, str] = {}
    for (literal, name), segment in zip(pattern, segments, strict=True):
        if literal is None:
            captured[name] = segment
        elif literal != segment:
            return None
    return captured


def _index(api: Api) -> dict[str, tuple[tuple[Endpoint, Compiled], ...]]:
    """Endpoints of ``api`` (with their compiled patterns) by their first literal segment
    after the fixed prefix."""
    skip = {Api.CLIENT: 0, Api.ADMIN: 3, Api.FEDERATION: 3}[api]
    index: dict[str, list[tuple[Endpoint, Compiled]]] = {}
    for endpoint in ENDPOINTS:
        if endpoint.api is api:
            entry = (endpoint, compile_parts(endpoint.parts))
            index.setdefault(endpoint.parts[skip], []).append(entry)
    return {key: tuple(found) for key, found in index.items()}


_CLIENT = _index(Api.CLIENT)
_ADMIN = _index(Api.ADMIN)
_FEDERATION = _index(Api.FEDERATION)


def _known_version(prefix: tuple[str, ...]) -> bool:
    version = "/".join(prefix)
    return version in CLIENT_VERSIONS or (len(prefix) == 2 and prefix[0] == "unstable")


def client_tails(segments: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Each way the decoded ``segments`` read as ``/_matrix/client/<version>/<tail>`` under a
    version prefix Synapse knows (:data:`CLIENT_VERSIONS`, ``unstable/<feature>``): pairs of
    the version and the non-empty tail (``unstable/login`` yields ``("unstable",
    ("login",))``; ``unstable/org.x/login`` yields ``("unstable/org.x", ("login",))`` too)."""
    if len(segments) < 4 or segments[0] != "_matrix" or segments[1] != "client":
        return
    for offset in (3, 4):
        prefix = segments[2:offset]
        if len(segments) > offset and _known_version(prefix):
            yield "/".join(prefix), segments[offset:]


def _checked(endpoint: Endpoint, params: dict[str, str], version: str | None) -> Route:
    for name in endpoint.no_slash:
        if "/" in params.get(name, ""):
            raise TimkitError(
                400,
                Codes.INVALID_PARAM,
                f"{name} {params[name][:100]!r} holds an encoded '/', which it cannot hold",
                requirement=UNAMBIGUOUS_RULE,
            )
    return Route(endpoint, params, version)


def route(target: RequestTarget) -> Route | None:
    """The membership endpoint ``target`` reaches, or None for any other path.

    Raises:
        TimkitError: 400 ``M_UNRECOGNIZED`` for a membership path under an unknown client
            API version prefix; 400 ``M_INVALID_PARAM`` when an id that cannot hold ``/``
            holds an encoded one.
    """
    segments = target.segments
    if len(segments) < 4:
        return None
    if segments[0] == "_matrix" and segments[1] == "client":
        for offset in (3, 4):
            tail = segments[offset:]
            for endpoint, pattern in _CLIENT.get(tail[0], ()) if tail else ():
                params = match_parts(pattern, tail)
                if params is None:
                    continue
                prefix = segments[2:offset]
                if not _known_version(prefix):
                    raise TimkitError(
                        400,
                        Codes.UNRECOGNIZED,
                        f"unknown client API version {'/'.join(prefix)[:100]!r} for "
                        f"{endpoint.path}",
                        requirement=UNAMBIGUOUS_RULE,
                    )
                return _checked(endpoint, params, "/".join(prefix))
        return None
    if segments[0] == "_synapse" and segments[1] == "admin":
        index = _ADMIN
    elif segments[0] == "_matrix" and segments[1] == "federation":
        index = _FEDERATION
    else:
        return None
    candidates = index.get(segments[3], ())
    for endpoint, pattern in candidates:
        params = match_parts(pattern, segments)
        if params is not None:
            return _checked(endpoint, params, None)
    for endpoint, pattern in candidates:
        # the same path under another version segment: a version this Synapse does not serve
        # now but a later one might; refused rather than relayed unchecked
        if match_parts((*pattern[:2], (segments[2], ""), *pattern[3:]), segments) is not None:
            raise TimkitError(
                400,
                Codes.UNRECOGNIZED,
                f"unknown API version {segments[2][:100]!r} for {endpoint.path}",
                requirement=UNAMBIGUOUS_RULE,
            )
    return None


def markdown_table() -> str:
    """:data:`ENDPOINTS` as the Markdown table of ``docs/membership-endpoints.md``."""
    lines = [
        "| API | methods | path | Synapse servlet | check |",
        "|---|---|---|---|---|",
    ]
    for endpoint in ENDPOINTS:
        lines.append(
            f"| {endpoint.api} | {' '.join(endpoint.methods)} | `{endpoint.full_path}` | "
            f"`{endpoint.servlet}` | {endpoint.check} |"
        )
    return "\n".join(lines) + "\n"
