"""Real HTTP servers standing in for the proxy's neighbours in component tests.

* :class:`FakeRd`: the Registrierungs-Dienst's ``GET /federation`` (proxies' bearer token,
  ``?version=``, 200 JWS / 304 / 503) and ``POST /vzd/invite`` (stage 3), over TLS.
* :class:`FakeSynapse`: the homeserver behind the proxy, plain HTTP, recording every request
  byte for byte and answering the few client and federation endpoints the proxy cares about.
* :func:`sign_list`: a federation list signed like the VZD-FHIR-Directory signs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core import jwt
from timkit.core.tls import FEDERATION_LIST_SIGNER, LocalPKI

TOKEN = "proxies-token-0123456789"
OUTDATED = "TIM_FEDERATION_LIST_OUTDATED"
MISSING = "TIM_FEDERATION_LIST_MISSING"


def sign_list(pki: LocalPKI, version: int, domains: list[str], name: str = "flist") -> bytes:
    """A federation list as the VZD-FHIR-Directory signs it (BP256R1, x5c)."""
    signer = pki.ensure_signing_cert(
        name, "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1(), role=FEDERATION_LIST_SIGNER
    )
    payload = {"version": version, "domainList": [{"domain": d} for d in domains]}
    return jwt.sign(
        orjson.dumps(payload),
        jwt.key_from_pem(signer.key.read_bytes()),
        x5c=jwt.x5c_of(x509.load_pem_x509_certificates(signer.cert.read_bytes())),
    ).encode()


@dataclass
class FakeRd:
    """The RD as its proxies see it (see the module docstring)."""

    jws: bytes | None = None
    version: int = 0
    outdated: bool = False
    asked: list[str | None] = field(default_factory=list)
    allowed_invites: set[tuple[str, str]] = field(default_factory=set)
    invite_checks: list[tuple[str, str]] = field(default_factory=list)
    invite_down: bool = False

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def federation(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "no"}, status=401)
        held = request.query.get("version")
        self.asked.append(held)
        if self.outdated:
            return web.json_response({"errcode": OUTDATED, "error": "veraltet"}, status=503)
        if self.jws is None:
            return web.json_response({"errcode": MISSING, "error": "none"}, status=503)
        if held == str(self.version):
            return web.Response(status=304)
        return web.Response(body=self.jws, content_type="application/jose")

    async def invite(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "no"}, status=401)
        if self.invite_down:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "VZD down"}, status=503)
        body = await request.json()
        pair = (body["invitingUser"], body["invitedUser"])
        self.invite_checks.append(pair)
        if pair in self.allowed_invites:
            return web.json_response({"allowed": True, "rule": "org directory"})
        return web.json_response(
            {"errcode": "M_FORBIDDEN", "error": "not in the organisation directory"}, status=403
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/federation", self.federation)
        app.router.add_post("/vzd/invite", self.invite)
        return app


@dataclass
class Seen:
    """One request as the homeserver received it."""

    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeSynapse:
    """The homeserver behind the proxy (see the module docstring).

    ``users`` maps access token → user id (for ``whoami``); ``big`` is the body of
    ``GET /big`` (streamed without a length).
    """

    server_name: str
    users: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    rooms: int = 0
    big: bytes = b""

    async def _record(self, request: web.Request) -> Seen:
        seen = Seen(request.method, request.raw_path, dict(request.headers), await request.read())
        self.seen.append(seen)
        return seen

    async def create_room(self, request: web.Request) -> web.Response:
        await self._record(request)
        self.rooms += 1
        return web.json_response({"room_id": f"!room{self.rooms}:{self.server_name}"})

    async def whoami(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user = self.users.get(token)
        if user is None:
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "?"}, status=401)
        return web.json_response({"user_id": user})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(self.big), 65536):
            await response.write(self.big[i : i + 65536])
        await response.write_eof()
        return response

    async def other(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        return web.json_response({"method": seen.method, "path": seen.raw_path})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_post("/_matrix/client/v3/createRoom", self.create_room)
        app.router.add_get("/_matrix/client/v3/account/whoami", self.whoami)
        app.router.add_get("/big", self.stream)
        app.router.add_route("*", "/{tail:.*}", self.other)
        return app
