"""A Registrierungs-Dienst wired to a real FHIR-Proxy + FHIR-Directory, in-process.

``start_rd`` boots the FHIR stack of ``tests/fhirproxy`` (a provider registered),
optionally a control-API double, and an RD (``open_context`` + ``create_app``) on free ports
whose ``directory`` section holds that provider's credentials and whose federation list trust
anchor is the stack's local CA. ``RdStack.admin`` creates an organisation, an active Org-Admin
account and a session straight in the RD database (the login flow is the accounts tests'
business) and returns an :class:`Admin` plus its bearer token.

``ControlDouble`` serves the runtime control API's protocol (``timkit.runtime.control_api``)
without processes; tests that need real Synapse use the real supervisor
(``tests/e2e/test_provisioning.py``). It is used where a test must steer the backend: make it
unreachable, never healthy, or failing.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from tests.fhirproxy.conftest import Stack, start_stack
from tests.support.postgres import PostgresServer

from timkit.core.config import parse_config
from timkit.core.process import free_port
from timkit.registration.api import create_app
from timkit.registration.auth import Admin
from timkit.registration.config import RegistrationConfig
from timkit.registration.context import RegistrationContext
from timkit.registration.service import open_context
from timkit.registration.storage import accounts, organisations, sessions

ACTIVE_TID = "9-2.58.00000040"  # Organization-OrganizationExample001 of the api-vzd examples
PROFESSION_OID = "1.2.276.0.76.4.50"  # Betriebsstätte Arzt
PROVIDER = "rd-provider"
PROXY_TOKEN = "proxy-secret-token"
_numbers = itertools.count()


def database_url(engine: str, tmp_path: Path, postgres: PostgresServer | None) -> str:
    """A fresh RD database on ``engine``."""
    if engine == "sqlite":
        return f"sqlite:///{tmp_path}/registration-{next(_numbers)}.db"
    assert postgres is not None
    return postgres.create_database(f"registration_{next(_numbers)}")


@dataclass
class ControlDouble:
    """The runtime control API's protocol with steerable behaviour and no processes.

    Attributes:
        services: domain → ServiceStatus body.
        healthy_after: GET polls of a new service before it reports running and healthy.
        fail_start: domains whose start fails (phase ``failed``).
        down: when set, every request but ``/health`` answers 503.
        calls: ``(method, domain)`` of every request, in order.
    """

    token: str = "control-token"
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    healthy_after: int = 1
    fail_start: set[str] = field(default_factory=set)
    down: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_route("*", "/services/{domain}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        domain = request.match_info["domain"]
        self.calls.append((request.method, domain))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"errcode": "M_UNKNOWN_TOKEN", "error": "token"}, status=401)
        if self.down:
            return web.json_response({"errcode": "M_UNKNOWN", "error": "down"}, status=503)
        if request.method == "PUT":
            body = await request.json()
            created = domain not in self.services
            if created:
                self.polls[domain] = 0
                self.services[domain] = {
                    "domain": domain,
                    "organisation": body["organisation"],
                    "phase": "starting",
                    "healthy": False,
                    "client_url": f"https://127.0.0.1:{free_port()}",
                    "federation_url": f"https://{domain}:443",
                }
            return web.json_response(self.services[domain], status=201 if created else 200)
        if domain not in self.services:
            return web.json_response({"errcode": "M_NOT_FOUND", "error": domain}, status=404)
        if request.method == "DELETE":
            del self.services[domain]
            return web.json_response({"domain": domain, "removed": True})
        status = self.services[domain]
        self.polls[domain] += 1
        if domain in self.fail_start:
            status["phase"] = "failed"
        elif self.polls[domain] >= self.healthy_after:
            status.update(phase="running", healthy=True)
        return web.json_response(status)


@dataclass
class RdStack:
    """A running RD, FHIR-Proxy, FHIR-Directory (and control double)."""

    url: str
    ctx: RegistrationContext
    fhir: Stack
    client: httpx.AsyncClient
    control: ControlDouble | None
    provider_secret: str

    def admin(
        self,
        username: str = "admin",
        telematik_id: str = ACTIVE_TID,
        organisation: str = "Praxis Beispiel",
    ) -> tuple[Admin, str]:
        """An active Org-Admin of ``telematik_id`` with a session; ``(admin, bearer token)``."""
        return make_admin(self.ctx, username, telematik_id, organisation)

    async def api(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        """``method`` on the RD with an optional bearer token; the httpx response."""
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.request(method, self.url + path, headers=headers, **kw)


def make_admin(
    ctx: RegistrationContext, username: str, telematik_id: str, organisation: str
) -> tuple[Admin, str]:
    """An active Org-Admin with a session in ``ctx``'s database; ``(admin, bearer token)``."""
    token = secrets.token_urlsafe(24)
    with ctx.db.write() as tx:
        organisations.upsert(tx, telematik_id, PROFESSION_OID, organisation, "test")
        account_id = accounts.insert(tx, username, telematik_id, "x", "x", "")
        accounts.activate(tx, account_id)
        sessions.create(tx, token, account_id, int(time.time()), 3600)
    return Admin(account_id, username, telematik_id, PROFESSION_OID, organisation), token


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def start_rd(
    tmp_path: Path,
    database: str,
    *,
    control: ControlDouble | None = None,
    settings: dict[str, Any] | None = None,
    fhir: Stack | None = None,
) -> AsyncIterator[RdStack]:
    """Boot the FHIR stack (unless given), the control double (if any) and an RD."""
    if fhir is None:
        async for stack in start_stack(tmp_path):
            async for rd in start_rd(
                tmp_path, database, control=control, settings=settings, fhir=stack
            ):
                yield rd
        return
    secret = fhir.add_provider(PROVIDER, "RD provider")
    control_runner = None
    if control is not None:
        port = free_port()
        control_runner = await _serve(control.app(), port)
        control.url = f"http://127.0.0.1:{port}"
        (tmp_path / "control-token").write_text(control.token, "utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data: dict[str, Any] = {
        "port": port,
        "base_url": url,
        "database": database,
        "pki_dir": str(tmp_path / "pki"),
        "rawdata": {"path": str(tmp_path / "rawdata.jsonl")},
        "directory": {"base_url": fhir.url, "client_id": PROVIDER, "client_secret": secret},
        "proxies": {"tokens": [PROXY_TOKEN]},
        "provisioning": {
            "retry_interval": 0.05,
            "poll_interval": 0.02,
            "max_attempts": 3,
            "embedded": {
                "url": control.url if control else "",
                "token_file": str(tmp_path / "control-token"),
            },
        },
    }
    for key, value in (settings or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    config = parse_config(RegistrationConfig, data)
    async with open_context(config) as ctx:
        runner = await _serve(create_app(ctx), port)
        async with httpx.AsyncClient(timeout=30) as client:
            try:
                yield RdStack(url, ctx, fhir, client, control, secret)
            finally:
                await runner.cleanup()
                if control_runner is not None:
                    await control_runner.cleanup()
