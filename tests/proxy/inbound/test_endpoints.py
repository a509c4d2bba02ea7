"""The membership endpoint table against the installed Synapse's own servlet registrations.

Synapse's REST servlets register their path regexes on an ``HttpServer``
(``register_paths``). The test runs the real registration functions of the pinned Synapse
(client, admin and federation API) against a recording server and a stand-in
``HomeServer`` (a ``MagicMock``: the servlets only fetch handlers from it while being
constructed; nothing is served), expands every regex into concrete paths and asserts that
each path whose servlet can change membership is in :data:`ENDPOINTS` with the same servlet,
or is listed below as reviewed with the reason it changes no membership. A Synapse upgrade
that adds such a path fails here until the table (and ``docs/membership-endpoints.md``) has
it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

from timkit.core.errors import TimkitError
from timkit.core.request_target import parse_target
from timkit.proxy.inbound.endpoints import ENDPOINTS, Api, Check, markdown_table, route

DOC = Path(__file__).parents[3] / "docs" / "membership-endpoints.md"

MEMBERSHIP_HINT = re.compile(
    r"member|invite|join|knock|leave|kick|ban|createroom|3pid|third_?party|upgrade|"
    r"room_?admin|notice|forget|deactivate|pusher|/state/|/send/|^RoomRest|send",
    re.IGNORECASE,
)
"""Words in a servlet's name or path that suggest it can change membership (or pushers)."""

REVIEWED: dict[str, str] = {
    # client API
    "RoomMemberListRestServlet": "reads the member list (GET)",
    "JoinedRoomMemberListRestServlet": "reads the joined members (GET)",
    "JoinedRoomsRestServlet": "reads the user's rooms (GET)",
    "RoomStateRestServlet": "reads a room's state (GET)",
    "ThreepidRestServlet": "adds a 3PID to the user's own account, no room",
    "ThreepidAddRestServlet": "adds a 3PID to the user's own account, no room",
    "ThreepidBindRestServlet": "binds the user's 3PID at an identity server, no room",
    "ThreepidUnbindRestServlet": "unbinds the user's 3PID, no room",
    "ThreepidDeleteRestServlet": "deletes a 3PID of the user's own account, no room",
    "SendToDeviceRestServlet": "to-device messages, no room",
    "AccountValiditySendMailServlet": "sends the own account-renewal mail, no room",
    "SendDelayedEventServlet": "sends now an event scheduled earlier through a checked "
    "state/send endpoint (the check ran when it was scheduled)",
    "PushersRestServlet": "reads the pushers (GET)",
    "LegacyPushersRemoveRestServlet": "removes a pusher (GET, unstable), never adds one",
    "AppserviceRoomMembershipRestServlet": "appservice read of a membership (GET)",
    "RoomSendEventRestServlet": "in the table; GET reads an event",
    "EmailThreepidRequestTokenRestServlet": "3PID validation mail for the own account",
    "MsisdnThreepidRequestTokenRestServlet": "3PID validation SMS for the own account",
    "AddThreepidEmailSubmitTokenServlet": "3PID validation for the own account",
    "AddThreepidMsisdnSubmitTokenServlet": "3PID validation for the own account",
    "EmailRegisterRequestTokenRestServlet": "3PID validation for registration",
    "MsisdnRegisterRequestTokenRestServlet": "3PID validation for registration",
    "RegistrationSubmitTokenServlet": "3PID validation for registration",
    "PasswordResetSubmitTokenServlet": "3PID validation for a password reset",
    "EmailPasswordRequestTokenRestServlet": "3PID validation for a password reset",
    "ThirdPartyProtocolsServlet": "reads bridge protocols (GET)",
    "ThirdPartyProtocolServlet": "reads a bridge protocol (GET)",
    "ThirdPartyUserServlet": "reads bridge users (GET)",
    "ThirdPartyLocationServlet": "reads bridge locations (GET)",
    "DeactivateAccountRestServlet": "client API: deactivates the requesting user's own "
    "account (leaves rooms, adds no member); the admin one is in the table",
    # admin API
    "RoomMembersRestServlet": "reads the member list (GET)",
    "UserJoinedRoomsRestServlet": "reads a user's rooms (GET)",
    "UserMembershipsRestServlet": "reads a user's memberships (GET)",
    "UserJoinedRoomCount": "reads a count (GET)",
    "UserInvitesCount": "reads a count (GET)",
    "DestinationMembershipRestServlet": "reads rooms shared with a server (GET)",
    "ListRoomRestServlet": "reads the room list (GET)",
    "RoomRestServlet": "in the table; GET reads the room",
    "BlockRoomRestServlet": "blocks a room, adds no member",
    "DeleteRoomStatusByRoomIdRestServlet": "reads a deletion status (GET)",
    "DeleteRoomStatusByDeleteIdRestServlet": "reads a deletion status (GET)",
    "RoomMessagesRestServlet": "reads messages (GET)",
    "RoomEventContextServlet": "reads events (GET)",
    "ForwardExtremitiesRestServlet": "maintenance of the room DAG, no member",
    "RoomTimestampToEventRestServlet": "reads an event id (GET)",
    "SendServerNoticeServlet": "in the table",
    "UserAdminServlet": "reads or sets the server-admin flag, no room",
    "ShadowBanRestServlet": "hides a user's events from others, no membership",
    # federation API
    "FederationEventAuthServlet": "reads the auth chain (GET)",
    "FederationStateV1Servlet": "reads room state (GET)",
    "FederationStateIdsServlet": "reads room state ids (GET)",
    "FederationSendServlet": "in the table (transaction)",
}
"""Servlets whose name or path looks membership-related but that change no membership
(or, for those in the table, whose other methods do not)."""


class _Recorder:
    """Stands in for Synapse's ``JsonResource``: records what servlets register."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def register_paths(
        self, method: str, path_patterns: Any, callback: Any, servlet_classname: str
    ) -> None:
        for pattern in path_patterns:
            self.seen.append((method, pattern.pattern, servlet_classname))


def _homeserver() -> MagicMock:
    hs = MagicMock()
    hs.hostname = "synapse.test"
    hs.config.worker.worker_app = None  # the main process registers everything
    return hs


def _registrations() -> list[tuple[Api, str, str, str]]:
    from synapse.federation.transport.server import register_servlets as federation
    from synapse.rest import ClientRestResource, admin

    made: list[tuple[Api, str, str, str]] = []
    registrations: list[tuple[Api, Callable[[_Recorder], None]]] = [
        (Api.CLIENT, lambda r: ClientRestResource.register_servlets(r, _homeserver())),
        (Api.ADMIN, lambda r: admin.register_servlets(_homeserver(), r)),
        (Api.FEDERATION, lambda r: federation(_homeserver(), r, MagicMock(), MagicMock())),
    ]
    for api, register in registrations:
        recorder = _Recorder()
        register(recorder)
        made += [(api, method, pattern, servlet) for method, pattern, servlet in recorder.seen]
    return sorted(set(made))


_GROUP = re.compile(r"\((?:\?P<(\w+)>)?((?:[^()\\]|\\.)*)\)")
_ANY = {"[^/]*", "[^/]+", r"[\w\.]*", ".*"}


def _samples(pattern: str) -> list[str]:
    """Concrete paths the regex ``pattern`` matches (one per alternative of each group)."""
    body = pattern.removeprefix("^").removesuffix("$").removesuffix("/?")
    if re.search(r"\)\?|\(\(|\(/\(", body):
        return []  # optional or nested groups: room_keys only, no membership servlet
    choices: list[list[str]] = []
    literal = 0
    pieces: list[str] = []
    for group in _GROUP.finditer(body):
        pieces.append(body[literal : group.start()].replace("\\", ""))
        name, inner = group.group(1), group.group(2)
        if inner in _ANY:
            choices.append([f"x{name or ''}"])
        else:
            choices.append([alt.replace("\\", "") for alt in inner.split("|")])
        pieces.append("{}")
        literal = group.end()
    pieces.append(body[literal:].replace("\\", ""))
    template = "".join(pieces)
    return [template.format(*combo) for combo in itertools.product(*choices)]


def _looks_membership(api: Api, method: str, pattern: str, servlet: str) -> bool:
    if not MEMBERSHIP_HINT.search(servlet) and not MEMBERSHIP_HINT.search(pattern):
        return False
    if api is Api.FEDERATION:
        return method != "GET" or "make_" in pattern
    return method not in ("GET", "HEAD", "OPTIONS")


REGISTRATIONS = _registrations()


def test_synapse_registrations_were_found() -> None:
    assert len(REGISTRATIONS) > 200
    servlets = {servlet for _, _, _, servlet in REGISTRATIONS}
    assert {"RoomMembershipRestServlet", "FederationV2InviteServlet"} <= servlets


@pytest.mark.parametrize(
    ("api", "method", "pattern", "servlet"),
    [r for r in REGISTRATIONS if _looks_membership(*r)],
    ids=lambda value: str(value)[:80],
)
def test_every_membership_path_of_synapse_is_in_the_table(
    api: Api, method: str, pattern: str, servlet: str
) -> None:
    samples = _samples(pattern)
    assert samples, f"cannot expand {pattern}"
    for path in samples:
        matched = route(parse_target(path))
        if matched is None:
            assert servlet in REVIEWED, (
                f"{method} {path} ({servlet}) may change membership but is neither in "
                "timkit.proxy.inbound.endpoints.ENDPOINTS nor reviewed here"
            )
        else:
            assert matched.endpoint.servlet == servlet, path
            assert method in matched.endpoint.methods, (method, path)


def test_every_table_entry_is_a_path_synapse_serves() -> None:
    served = {(method, servlet) for _, method, _, servlet in REGISTRATIONS}
    for endpoint in ENDPOINTS:
        for method in endpoint.methods:
            assert (method, endpoint.servlet) in served, (method, endpoint.path)


def test_the_doc_shows_the_table() -> None:
    assert markdown_table() in DOC.read_text("utf-8")


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/v3/rooms/!r:x/invite",
        "/_matrix/client/r0/rooms/!r:x/invite",
        "/_matrix/client/api/v1/rooms/!r:x/invite",
        "/_matrix/client/unstable/rooms/!r:x/invite",
        "/_matrix/client/unstable/org.example.msc9999/rooms/!r:x/invite",
        "/_matrix/client/v3/rooms/!r:x/invite/txn1",
        "/_matrix/client/v3/rooms/!r:x/invite/",
        "/_matrix/client/v3/rooms/%21r%3Ax/invit%65",
        "/_matrix/client/v3/rooms/%21r%3Ax/%69nvite",
        "/_matrix/client/%763/rooms/!r:x/invite",
    ],
)
def test_every_spelling_of_an_invite_is_an_invite(path: str) -> None:
    matched = route(parse_target(path))
    assert matched is not None
    assert matched.check is Check.INVITE
    assert matched.params["room_id"] == "!r:x"


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/v4/createRoom",
        "/_matrix/client/v3.1/rooms/!r:x/invite",
        "/_matrix/client/x/y/join/!r",
    ],
)
def test_membership_paths_under_an_unknown_version_are_refused(path: str) -> None:
    with pytest.raises(TimkitError) as refused:
        route(parse_target(path))
    assert refused.value.status == 400
    assert refused.value.errcode == "M_UNRECOGNIZED"


def test_an_encoded_slash_is_refused_in_ids_but_kept_in_event_ids() -> None:
    invite = route(parse_target("/_matrix/federation/v2/invite/!r:x/$abc%2F%2Fdef"))
    assert invite is not None
    assert invite.check is Check.FEDERATION_INVITE
    assert invite.params == {"room_id": "!r:x", "event_id": "$abc//def"}
    for path in (
        "/_matrix/federation/v2/invite/!r%2Fx/$e",
        "/_matrix/client/v3/rooms/!r%2Fx/invite",
        "/_matrix/client/v3/createRoom/t%2F1",
        "/_matrix/federation/v1/make_join/!r:x/@u%2F:x",
    ):
        with pytest.raises(TimkitError) as refused:
            route(parse_target(path))
        assert refused.value.errcode == "M_INVALID_PARAM", path


def test_an_unknown_federation_version_of_a_membership_path_is_refused() -> None:
    with pytest.raises(TimkitError) as refused:
        route(parse_target("/_matrix/federation/v3/invite/!r:x/$e"))
    assert refused.value.errcode == "M_UNRECOGNIZED"


def test_other_paths_are_not_membership_endpoints() -> None:
    for path in (
        "/_matrix/client/v3/sync",
        "/_matrix/client/v3/rooms/!r:x/messages",
        "/_matrix/client/versions",
        "/_matrix/federation/v1/version",
    ):
        assert route(parse_target(path)) is None, path
