"""The inbound listener: the Messenger-Service's public client and federation URL.

Routes, in order:

* ``/tim-contact-mgmt/v1.0.2/…``: the Freigabeliste API (its own error format);
* ``GET /health``: the proxy's state (200 ``ok``/``starting``, 503 when the federation list
  is outdated and federation traffic is blocked);
* ``GET /metrics``: Prometheus metrics, to loopback peers only;
* ``/_matrix/federation/…``, ``/_matrix/key/…``: server-server traffic
  (:mod:`timkit.proxy.inbound.server_server`);
* everything else: client-server traffic (:mod:`timkit.proxy.inbound.client`); the rest is
  relayed untouched.

Every request's target is first read as Synapse reads it
(:func:`timkit.core.request_target.parse_target`: split, then decoded); an ambiguous target
is 400 and a repeated ``Authorization`` 401, never relayed. Which path gets which check is
the table in :mod:`timkit.proxy.inbound.endpoints` (every endpoint that can change room
membership, plus ``pushers/set``), matched on the decoded segments whatever the spelling.

Errors are Matrix JSON (``errcode``, ``error`` naming the rule) rendered here, once.

Rohdatenerfassung (ML-132590, ML-132592, ML-132593): each checked invite is recorded as a run
of AF_10104 (all invitees local) or AF_10061, each inbound federation transaction as a run of
AF_10062, with its outcome and status (:mod:`timkit.core.rawdata`, no personal data).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from timkit.core.errors import Codes, TimkitError
from timkit.core.metrics import metrics_handler
from timkit.core.rawdata import FAILURE, RawDataSink
from timkit.core.request_target import (
    RequestTarget,
    UnparsableRequest,
    parse_target,
    single_header,
)
from timkit.core.web import Handler, guard, json_response, matrix_http_code, read_stream
from timkit.proxy.config import InboundConfig
from timkit.proxy.contacts.handlers import ContactsService
from timkit.proxy.domain_gate import DomainGate
from timkit.proxy.inbound import (
    client,
    client_check,
    endpoints,
    rawdata_intake,
    server_server,
    use_cases,
    versions,
    well_known,
)
from timkit.proxy.inbound.endpoints import UNAMBIGUOUS_RULE, Check, Route
from timkit.proxy.inbound.synapse_relay import Relay
from timkit.proxy.invite_check import InviteCheck
from timkit.proxy.list_gate import MISSING
from timkit.proxy.metrics import ProxyMetrics

log = logging.getLogger(__name__)

CONTACTS_PREFIX = "/tim-contact-mgmt/v1.0.2"
COMPONENT = "proxy"
"""The component name in raw-data records."""
_INTERNAL = TimkitError(500, Codes.UNKNOWN, "internal error in the Messenger-Proxy")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that read: relayed past the client-side membership checks."""


def _render(request: web.Request, error: TimkitError) -> web.Response:
    return json_response(error.to_matrix(), error.status)


def _is_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


class Inbound:
    """Checks and relays the service's inbound traffic (see the module docstring)."""

    def __init__(
        self,
        server_name: str,
        settings: InboundConfig,
        gate: DomainGate,
        relay: Relay,
        contacts: ContactsService,
        invite_check: InviteCheck,
        metrics: ProxyMetrics,
        rawdata: RawDataSink,
    ) -> None:
        self.server_name = server_name.lower()
        self.settings = settings
        self.gate = gate
        self.relay = relay
        self.contacts = contacts
        self.invite_check = invite_check
        self.metrics = metrics
        self.rawdata = rawdata
        self.intake = rawdata_intake.RunIntake(relay, rawdata)
        self._client_requests = metrics.requests.labels("client")
        self._federation_requests = metrics.requests.labels("federation")
        self._push_gateways = client.push_gateway_set(settings.push_gateways)
        cap = versions.parse_version(settings.max_matrix_version)
        if cap is None:  # InboundConfig validates it; never serve an uncapped list
            raise ValueError(f"max_matrix_version {settings.max_matrix_version!r} is unreadable")
        self._version_cap = cap
        self._clients = client_check.ClientCheck(
            (c.client_id, c.secret_sha256) for c in settings.supported_clients
        )

    # -- edge -------------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        return await guard(
            request,
            handler,
            self._render,
            http_code=matrix_http_code,
            internal=_INTERNAL,
            logger=log,
        )

    def _render(self, request: web.Request, error: TimkitError) -> web.Response:
        if error.requirement or error.status in (401, 403):
            listener = "federation" if _is_federation(request.path) else "client"
            self.metrics.denied(listener, error.requirement)
        return _render(request, error)

    async def _read(self, request: web.Request, limit: int | None = None) -> bytes:
        limit = limit or self.settings.checked_body
        if request.content_length is not None and request.content_length > limit:
            raise TimkitError(413, Codes.TOO_LARGE, f"request body larger than {limit} bytes")
        try:
            return await read_stream(request.content, limit)
        except ValueError:
            raise TimkitError(
                413, Codes.TOO_LARGE, f"request body larger than {limit} bytes"
            ) from None

    def _check_size(self, request: web.Request) -> None:
        if request.content_length is not None and request.content_length > self.settings.max_body:
            raise TimkitError(
                413, Codes.TOO_LARGE, f"request body larger than {self.settings.max_body} bytes"
            )

    # -- routes -----------------------------------------------------------------------------

    async def health(self, _request: web.Request) -> web.Response:
        """``GET /health`` (see the module docstring)."""
        healthy, state = self.gate.health()
        if not healthy and state.get("errcode") == MISSING:
            return json_response({**state, "status": "starting"})
        return json_response(state, 200 if healthy else 503)

    def _target(self, request: web.Request) -> RequestTarget:
        """The request's target, split as Synapse splits it; refuses what is ambiguous.

        Raises:
            TimkitError: 400 ``M_INVALID_PARAM`` for a target that cannot be read
                unambiguously, 401 ``M_UNAUTHORIZED`` for a repeated ``Authorization``.
        """
        try:
            target = parse_target(request.raw_path)
        except UnparsableRequest as e:
            raise TimkitError(
                400, Codes.INVALID_PARAM, f"request refused: {e}", requirement=UNAMBIGUOUS_RULE
            ) from None
        try:
            single_header(request.headers, "Authorization")
        except UnparsableRequest as e:
            rule = server_server.ORIGIN_RULE if _is_federation(target) else UNAMBIGUOUS_RULE
            raise TimkitError(401, Codes.UNAUTHORIZED, str(e), requirement=rule) from None
        return target

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Every request that is not the proxy's own."""
        target = self._target(request)
        if _is_federation(target):
            self._federation_requests.inc()
            return await self._federation(request, target)
        self._client_requests.inc()
        first = target.segments[:1]
        if first == (rawdata_intake.PREFIX,):
            return await self.intake.handle(request, target)
        if first == (well_known.PREFIX,):
            well_known.check(request.method, target)
            return await self.relay.forward(request, "client")
        use_case = use_cases.use_case(request.method, target)
        if use_case is None:
            return await self._client_request(request, target)
        return await self._recorded(use_case, self._client_request(request, target))

    async def _client_request(
        self, request: web.Request, target: RequestTarget
    ) -> web.StreamResponse:
        """A client-server request: the supported-client check on logins, the capped
        versions, the membership checks of :mod:`.endpoints`, else relayed."""
        if self._clients.active and client_check.is_login_path(target.segments):
            self._clients.check(request.headers)
        if target.segments == versions.VERSIONS_PATH:
            return await self._versions(request, self._version_cap)
        matched = endpoints.route(target)
        if matched is None or request.method in SAFE_METHODS:
            self._check_size(request)
            return await self.relay.forward(request, "client")
        return await self._client(request, matched)

    async def _versions(self, request: web.Request, cap: tuple[int, int]) -> web.StreamResponse:
        """``GET /_matrix/client/versions`` with the versions above ``cap`` removed (any other
        method, and any answer but 200, is relayed as Synapse gave it)."""
        self._check_size(request)
        if request.method != "GET":
            return await self.relay.forward(request, "client")
        response, answer = await self.relay.exchange(
            request, "client", b"", self.settings.checked_body
        )
        if response.status != 200:
            return response
        body = versions.capped(answer, cap)
        headers = CIMultiDict(response.headers)
        headers.popall("Content-Length", None)
        return web.Response(status=200, headers=headers, body=body)

    async def _client(self, request: web.Request, matched: Route) -> web.StreamResponse:
        """A client request that can change membership (or set a pusher): its check."""
        check, params = matched.check, matched.params
        if check is Check.INVITE:
            return await self._client_invite(request, params["room_id"])
        if check is Check.CREATE_ROOM:
            return await self._create_room(request)
        if check is Check.MEMBER_STATE:
            return await self._member_state(request, params)
        if check is Check.MEMBER_SEND and params["event_type"] == client.MEMBER:
            raise client.forbidden(
                "m.room.member events are sent through the membership endpoints, not /send",
                client.PERMISSION_RULE,
            )
        if check is Check.OWN_MEMBERSHIP:
            body = await self._read(request)
            client.check_own_membership(body)
            return await self.relay.forward(request, "client", body)
        if check is Check.PUSHER:
            body = await self._read(request)
            client.check_pusher(client.parse_json_object(body), self._push_gateways)
            return await self.relay.forward(request, "client", body)
        if check is Check.REFUSED:
            raise client.forbidden(
                f"{matched.endpoint.path} changes room membership past the permission check; "
                "it is not served on the public listener",
                client.PERMISSION_RULE,
            )
        self._check_size(request)
        return await self.relay.forward(request, "client")

    async def _member_state(
        self, request: web.Request, params: dict[str, str]
    ) -> web.StreamResponse:
        """``PUT …/state/{eventType}[/{stateKey}]``: membership events are checked by kind."""
        event_type, state_key = params["event_type"], params.get("state_key", "")
        if event_type == client.THIRD_PARTY_INVITE:
            raise client.forbidden(
                "m.room.third_party_invite events are not allowed in the TI-Messenger",
                client.THIRD_PARTY_RULE,
            )
        if event_type != client.MEMBER:
            self._check_size(request)
            return await self.relay.forward(request, "client")
        body = await self._read(request)
        membership = client.member_state_membership(client.parse_json_object(body), state_key)
        if membership == "invite":
            return await self._recorded(
                self._use_case([state_key]),
                self._checked_invite(request, params["room_id"], body, {"user_id": state_key}),
            )
        if membership in ("join", "knock"):
            requester = await self._creator(request)
            if requester is None:
                raise TimkitError(401, Codes.UNKNOWN_TOKEN, "the access token does not name a user")
            if requester != state_key:
                raise client.forbidden(
                    f"{requester} cannot {membership} on behalf of {state_key}",
                    client.PERMISSION_RULE,
                )
        return await self.relay.forward(request, "client", body)

    async def _recorded(
        self, use_case: str, run: Awaitable[web.StreamResponse]
    ) -> web.StreamResponse:
        """``await run``, recorded as one run of ``use_case`` (Rohdatenerfassung; an
        intermediate authentication step is not, :func:`.use_cases.is_interim`)."""
        async with self.rawdata.measure(use_case, COMPONENT) as outcome:
            response = await run
            outcome.status = response.status
            if response.status >= 400:
                outcome.result = FAILURE
            body = response.body if isinstance(response, web.Response) else None
            outcome.skip = use_cases.is_interim(
                use_case, response.status, body if isinstance(body, bytes) else None
            )
        return response

    def _use_case(self, invitees: list[Any]) -> str:
        """AF_10104 for invites within the organisation, AF_10061 for any other."""
        local = all(isinstance(u, str) and u.endswith(":" + self.server_name) for u in invitees)
        return client.WITHIN if local else client.OUTSIDE

    async def _client_invite(self, request: web.Request, room_id: str) -> web.StreamResponse:
        body = await self._read(request)
        document = client.parse_json_object(body)
        return await self._recorded(
            self._use_case([document.get("user_id")]),
            self._checked_invite(request, room_id, body, document),
        )

    async def _checked_invite(
        self, request: web.Request, room_id: str, body: bytes, document: dict[str, Any]
    ) -> web.StreamResponse:
        pair = await self.contacts.direct_room(room_id)
        await client.check_invite(self.gate, document, pair)
        return await self.relay.forward(request, "client", body)

    async def _create_room(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        document = client.parse_json_object(body)
        invite = document.get("invite")
        if not invite or not isinstance(invite, list):
            await client.check_create_room(self.gate, document)
            return await self.relay.forward(request, "client", body)
        return await self._recorded(
            self._use_case(invite), self._checked_create_room(request, body, document)
        )

    async def _checked_create_room(
        self, request: web.Request, body: bytes, document: dict[str, Any]
    ) -> web.StreamResponse:
        partner = await client.check_create_room(self.gate, document)
        if partner is None:
            return await self.relay.forward(request, "client", body)
        response, answer = await self.relay.exchange(
            request, "client", body, self.settings.checked_body
        )
        room_id = client.room_id_of(response.status, answer)
        if room_id:
            creator = await self._creator(request)
            if creator:
                await self.contacts.record_direct_room(room_id, creator, partner)
        return response

    async def _creator(self, request: web.Request) -> str | None:
        """The user id behind the request's access token (``/account/whoami``); None when
        Synapse names none or cannot be asked."""
        try:
            return await self.relay.whoami(
                request.headers.get("Authorization"), request.query.get("access_token")
            )
        except TimkitError:
            return None

    async def _federation(self, request: web.Request, target: RequestTarget) -> web.StreamResponse:
        if server_server.is_exempt(target):
            return await self.relay.forward(request, "federation")
        origin = await server_server.check_origin(
            self.gate, request.headers.get("Authorization"), self.server_name
        )
        matched = endpoints.route(target)
        if matched is None:
            self._check_size(request)
            return await self.relay.forward(request, "federation")
        check = matched.check
        if check is Check.TRANSACTION:
            return await self._recorded(server_server.EVENTS, self._transaction(request, origin))
        if check is Check.FEDERATION_INVITE:
            version = target.segments[2].removeprefix("v")
            return await self._recorded(
                client.OUTSIDE,
                self._federation_invite(request, version, origin, matched.params["room_id"]),
            )
        if check is Check.FEDERATION_MEMBERSHIP:
            kind = target.segments[3]
            if kind.startswith("make_"):
                server_server.check_member_of_origin(matched.params["user_id"], origin)
                return await self.relay.forward(request, "federation")
            body = await self._read(request)
            server_server.check_membership_event(
                client.parse_json_object(body),
                kind.removeprefix("send_"),
                matched.params["room_id"],
                origin,
            )
            return await self.relay.forward(request, "federation", body)
        if check is Check.THIRD_PARTY:
            raise server_server.third_party_refused()
        raise server_server.unchecked(matched.endpoint.path)

    async def _stages_2_and_3(self, invite: server_server.Invite) -> None:
        """Stage 2 (the invitee's Freigabeliste), else stage 3 (the RD); ML-132864.

        Raises:
            TimkitError: 403 when neither allows; 502 when stage 3 cannot be asked.
        """
        if not await self.contacts.allows(invite.invitee, invite.inviter):
            verdict = await self.invite_check.ask(invite.inviter, invite.invitee)
            if not verdict.allowed:
                raise server_server.refused(invite, verdict.reason)

    async def _transaction(self, request: web.Request, origin: str) -> web.StreamResponse:
        """``PUT /send/{txnId}``: invites of local users among its PDUs pass stages 2/3.

        A server already in a room could otherwise hand our Synapse an invite PDU of a local
        user directly, past ``/invite``; a legitimate invite's echo passes the same check it
        passed at ``/invite``.
        """
        body = await self._read(
            request, min(server_server.TRANSACTION_BODY, self.settings.max_body)
        )
        for invite in server_server.invites_in_transaction(
            client.parse_json_object(body), self.server_name
        ):
            await self._stages_2_and_3(invite)
        return await self.relay.forward(request, "federation", body)

    async def _federation_invite(
        self, request: web.Request, version: str, origin: str, room_id: str
    ) -> web.StreamResponse:
        body = await self._read(request)
        invite = server_server.parse_invite(
            version, client.parse_json_object(body), origin, self.server_name
        )
        if invite.room_id != room_id:
            raise TimkitError(
                400, Codes.INVALID_PARAM, "the invite event's room_id is not the path's room"
            )
        await self._stages_2_and_3(invite)
        if not invite.is_direct:
            return await self.relay.forward(request, "federation", body)
        # read whole, so the 1:1 room is recorded before the inviting server hears back
        response, _ = await self.relay.exchange(
            request, "federation", body, self.settings.checked_body
        )
        if response.status == 200:
            await self.contacts.record_direct_room(invite.room_id, invite.inviter, invite.invitee)
        return response

    # -- assembly ---------------------------------------------------------------------------

    def app(self, contacts_app: web.Application) -> web.Application:
        """The aiohttp application of the listener."""
        app = web.Application(middlewares=[self._errors], client_max_size=self.settings.max_body)
        app.add_subapp(CONTACTS_PREFIX, contacts_app)
        metrics = metrics_handler(self.metrics.registry)

        async def local_metrics(request: web.Request) -> web.StreamResponse:
            if not _is_loopback(request):
                raise TimkitError(404, Codes.UNRECOGNIZED, "not found")
            return await metrics(request)

        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", local_metrics)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app


def _is_federation(target: RequestTarget | str) -> bool:
    """Whether a request goes to the server-server API (decided on the decoded segments, so
    ``/_matrix/f%65deration/…`` is federation traffic too)."""
    if isinstance(target, str):
        return target.startswith(("/_matrix/federation/", "/_matrix/key/"))
    return target.segments[:1] == ("_matrix",) and target.segments[1:2] in (
        ("federation",),
        ("key",),
    )
