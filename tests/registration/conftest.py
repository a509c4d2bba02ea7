"""Registrierungs-Dienst fixtures: the real RD in-process over TLS, with a real IDP and SMTP.

``rd`` boots, on free ports and with one local PKI:

* the IDP stand-in (:mod:`timkit.idp`, in-process, HTTPS) with test cards: an SMC-B
  (``praxis``), a second SMC-B (``klinik``), an HBA (``arzt``);
* an SMTP server (aiosmtpd) that keeps every message (:attr:`RdStack.mails`);
* the RD (HTTPS, ``base_url`` = its address), configured for both Verfahren: OIDC at that IDP,
  KIM with a JSON entries file (:data:`ENTRIES`) and that SMTP server.

``rd_db_url`` gives the RD database on SQLite and on PostgreSQL. ``admin_session`` is a
logged-in Org-Admin created through the real flow (OIDC → account → TOTP → login).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP
from tests.registration.browser import browser, shots
from tests.support.postgres import PostgresServer
from tests.support.wait import async_wait_until

from timkit.core.config import parse_config
from timkit.core.process import free_port
from timkit.core.tls import LocalPKI, client_ssl_context, server_ssl_context
from timkit.idp.api import create_app as create_idp_app
from timkit.idp.config import IdpConfig
from timkit.idp.service import build_provider, tls_context
from timkit.registration.api import create_app
from timkit.registration.config import RegistrationConfig
from timkit.registration.context import RegistrationContext
from timkit.registration.service import open_context

__all__ = ["browser", "shots"]  # fixtures of tests/registration/browser.py

CLIENT_ID = "registration"
CLIENT_SECRET = "rd-secret"
PASSWORD = "korrekt Pferd Batterie Heftklammer"
_numbers = itertools.count()

CARDS = """
cards:
  - id: praxis
    type: SMC-B
    telematikID: 1-2.58.00000040
    professionOID: 1.2.276.0.76.4.50
    organizationName: Praxis Dr. Test
  - id: klinik
    type: SMC-B
    telematikID: 5-2.58.00000050
    professionOID: 1.2.276.0.76.4.53
    organizationName: Klinikum Test
  - id: arzt
    type: HBA
    telematikID: 1-1.58.00000099
    professionOID: 1.2.276.0.76.4.30
    given_name: Erika
    family_name: Muster
"""

ENTRIES = [
    {
        "telematikID": "1-2.58.00000041",
        "displayName": "Zahnarztpraxis Lächeln",
        "professionOID": "1.2.276.0.76.4.51",
        "mail": ["zahnarzt-laecheln@kim.tim.test"],
    },
    {
        "telematikID": "1-1.58.00000042",
        "displayName": "Muster, Max",
        "professionOID": "1.2.276.0.76.4.30",
        "mail": ["max.muster@kim.tim.test"],
    },
    {
        "telematikID": "1-2.58.00000043",
        "displayName": "Apotheke ohne KIM",
        "professionOID": "1.2.276.0.76.4.54",
    },
]


class _Keep:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class RdStack:
    """A running RD with its IDP and SMTP server.

    Attributes:
        url: the RD's base URL (HTTPS).
        idp_url: the IDP's issuer.
        ctx: the RD's context.
        client: HTTPS client trusting the local CA; follows no redirects.
        ca_file: the local CA certificate.
        mails: messages the SMTP server received.
        rawdata: the raw-data JSON-lines file.
    """

    url: str
    idp_url: str
    ctx: RegistrationContext
    client: httpx.AsyncClient
    ca_file: Path
    mails: list[Message]
    rawdata: Path
    counter: itertools.count[int] = field(default_factory=itertools.count)

    async def oidc_registration(self, card: str = "praxis") -> httpx.Response:
        """Drive Verfahren 1 like a script: start, POST the IDP's card form, follow back."""
        start = await self.client.post(self.url + "/api/v1/organisations/oidc", json={})
        assert start.status_code == 200, start.text
        authorization = httpx.URL(start.json()["authorization_url"])
        page = await self.client.get(authorization)
        assert page.status_code == 200, page.text
        form = {**dict(authorization.params), "card": card}
        chosen = await self.client.post(self.idp_url + "/auth", data=form)
        assert chosen.status_code in (302, 303), chosen.text
        return await self.client.get(chosen.headers["location"])

    async def registration_token(self, card: str = "praxis") -> str:
        """A registration token from a successful Verfahren 1 with ``card``."""
        response = await self.oidc_registration(card)
        assert response.status_code == 200, response.text
        return str(response.json()["registration_token"])

    async def create_admin(self, token: str, username: str = "") -> AdminSession:
        """Create, activate (TOTP) and log in an Org-Admin with ``token``."""
        username = username or f"admin{next(self.counter)}"
        created = await self.client.post(
            self.url + "/api/v1/accounts",
            json={"registration_token": token, "username": username, "password": PASSWORD},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        session = AdminSession(self, username, PASSWORD, body["totp_secret"], "", body)
        activated = await self.client.post(
            self.url + "/api/v1/accounts/totp",
            json={"username": username, "code": session.fresh_code()},
        )
        assert activated.status_code == 200, activated.text
        await session.login()
        return session

    def last_link(self) -> str:
        """The confirmation link of the newest mail."""
        payload = self.mails[-1].get_payload(decode=True)
        assert isinstance(payload, bytes)
        found = re.search(r"https://\S+/kim/confirm\?token=[\w-]+", payload.decode())
        assert found, payload
        return found.group(0)

    def raw_records(self) -> list[dict[str, Any]]:
        """Raw-data records written so far."""
        if not self.rawdata.exists():
            return []
        return [json.loads(line) for line in self.rawdata.read_text().splitlines() if line]


@dataclass
class AdminSession:
    """A logged-in Org-Admin (bearer session token)."""

    rd: RdStack
    username: str
    password: str
    totp_secret: str
    token: str
    account: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization: Bearer …``."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def telematik_id(self) -> str:
        """The organisation's TelematikID."""
        return str(self.account["telematikID"])

    last_step: int = 0

    def code(self, offset: int = 0) -> str:
        """A TOTP code ``offset`` steps from now."""
        return pyotp.TOTP(self.totp_secret).at(time.time() + offset * 30)

    def fresh_code(self) -> str:
        """A code of a time step the RD has not seen yet (current or next; each is used once)."""
        step = max(int(time.time() // 30), self.last_step + 1)
        assert step <= int(time.time() // 30) + 1, "no unused TOTP step within the window"
        self.last_step = step
        return pyotp.TOTP(self.totp_secret).at(step * 30)

    async def login(self) -> None:
        """Log in with password and a fresh TOTP code (waiting for the next time step when
        both in the window were used); keeps the bearer token."""
        await async_wait_until(
            lambda: self.last_step < int(time.time() // 30) + 1, "an unused TOTP step", 35
        )
        response = await self.rd.client.post(
            self.rd.url + "/api/v1/login",
            json={"username": self.username, "password": self.password, "otp": self.fresh_code()},
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method`` on the RD's ``path`` with the bearer token."""
        return await self.rd.client.request(
            method, self.rd.url + path, headers=self.headers, **kwargs
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def rd_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh RD database URL on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/registration-{next(_numbers)}.db"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database(f"rd_org_auth_{next(_numbers)}")


def _reserved_port() -> socket.socket:
    """A loopback socket bound to a free port and kept until :func:`_serve` listens on it:
    while it is bound no outgoing connection can take the port (``free_port`` releases it
    at once, and the RD's set-up makes many connections before it listens)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


async def _serve(app: web.Application, sock: socket.socket, ssl_context: Any) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    return runner


async def start_rd(
    tmp_path: Path, database: str | None = None, *, host: str = "127.0.0.1", **overrides: Any
) -> AsyncIterator[RdStack]:
    """Boot IDP, SMTP server and RD; ``overrides`` are merged into the RD's config.

    ``host`` names the RD in its base URL (it listens on 127.0.0.1 either way): WebAuthn
    needs a domain, so the WebAuthn browser tests use ``localhost``.
    """
    pki_dir = tmp_path / "pki"
    pki = LocalPKI(pki_dir)
    rd_sock, idp_sock = _reserved_port(), _reserved_port()
    rd_port, idp_port = _port(rd_sock), _port(idp_sock)
    rd_url = f"https://{host}:{rd_port}"
    idp_url = f"https://127.0.0.1:{idp_port}"
    cards = tmp_path / "cards.yaml"
    cards.write_text(CARDS)
    idp_config = parse_config(
        IdpConfig,
        {
            "port": idp_port,
            "pki_dir": pki_dir,
            "cards_file": cards,
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [rd_url + "/oidc/callback"],
                }
            ],
        },
    )
    idp_runner = await _serve(
        create_idp_app(build_provider(idp_config)), idp_sock, tls_context(idp_config)
    )
    keep = _Keep()
    smtp_port = free_port()
    smtp = await asyncio.get_running_loop().create_server(
        lambda: SMTP(keep, hostname="rd-test-smtp"), "127.0.0.1", smtp_port
    )
    entries = tmp_path / "entries.json"
    entries.write_text(json.dumps(ENTRIES))
    certs = pki.ensure_server_cert("registration", ["127.0.0.1", "localhost"])
    rawdata = tmp_path / f"rawdata-{next(_numbers)}.jsonl"
    settings: dict[str, Any] = {
        "port": rd_port,
        "base_url": rd_url,
        "tls_cert": certs.cert,
        "tls_key": certs.key,
        "database": database or f"sqlite:///{tmp_path}/registration-{next(_numbers)}.db",
        "pki_dir": pki_dir,
        "idp": {
            "issuer": idp_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "ca_file": pki_dir / "ca.crt",
        },
        "kim": {
            "directory": {"entries_file": entries},
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "sender": "rd@kim.tim.test"},
        },
        "rawdata": {"path": rawdata},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    config = parse_config(RegistrationConfig, settings)
    try:
        async with open_context(config) as ctx:
            runner = await _serve(create_app(ctx), rd_sock, server_ssl_context(certs))
            verify = client_ssl_context(pki_dir / "ca.crt")
            async with httpx.AsyncClient(verify=verify, timeout=30) as client:
                try:
                    yield RdStack(
                        rd_url, idp_url, ctx, client, pki_dir / "ca.crt", keep.messages, rawdata
                    )
                finally:
                    await runner.cleanup()
    finally:
        rd_sock.close()  # closed by the runner when it served; else still only reserved
        smtp.close()
        await smtp.wait_closed()
        await idp_runner.cleanup()


@pytest.fixture
async def rd(tmp_path: Path) -> AsyncIterator[RdStack]:
    """The RD stack on SQLite."""
    async for stack in start_rd(tmp_path):
        yield stack


@pytest.fixture
async def admin_session(rd: RdStack) -> AdminSession:
    """A logged-in Org-Admin of ``Praxis Dr. Test`` (SMC-B ``praxis``), made by the real flow."""
    return await rd.create_admin(await rd.registration_token("praxis"), "praxis-admin")
