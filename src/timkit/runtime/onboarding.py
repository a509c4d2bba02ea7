"""The local run onboards its organisations through the Registrierungs-Dienst (no back door).

Before the supervisor starts, :func:`ensure_rd_provider` does the operator's part (what
``timkit directory provider add`` and ``provider cert`` do): the Registrierungs-Dienst is a
TI-M provider at the local FHIR-Proxy (OAuth client :data:`~timkit.runtime.plan.RD_PROVIDER`,
secret in ``<data>/registration/provider.json``, mode 0600) with its RegService-OpenID-Token
signing certificate registered; and the Messenger-Proxies' bearer token for the RD's
``/federation`` is created (``<data>/registration/proxies-token``, 0600).

Once every shared component is healthy, :func:`onboard` does what an Org-Admin of each demo
organisation (:func:`timkit.runtime.demo.demo_organisations`) would do, through the RD's
JSON API and the IDP stand-in's card form, over TLS verified with the local CA:

1. AF_10103 Verfahren 1: ``POST /api/v1/organisations/oidc``, ``POST <idp>/auth`` with the
   request's parameters and the organisation's SMC-B card, ``GET`` the redirect to the RD's
   ``/oidc/callback`` → registration token;
2. the Org-Admin account: ``POST /api/v1/accounts`` (generated password) → TOTP secret,
   confirmed with a code computed by pyotp (``POST /api/v1/accounts/totp``); the credentials
   are kept in ``<data>/registration/demo-admins.json`` (0600);
3. ``POST /api/v1/login`` with password and TOTP code;
4. AF_10060 for each of the organisation's configured services: ``POST /api/v1/services``
   unless the RD has it already, then ``GET /api/v1/services/{domain}`` until ``active``
   (running, healthy and its domain in the federation list).

On a warm ``up`` the accounts exist: step 1 and 2 are skipped, and services already active
need nothing. A TOTP code is used once per 30 s step: the last step used is stored with the
credentials, and a login that needs a later step than the clock allows waits for it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import httpx
import pyotp

from timkit.core.errors import Codes, TimkitError
from timkit.core.files import write_private
from timkit.core.http import async_client
from timkit.core.tls import LocalPKI
from timkit.fhirproxy.service import open_database
from timkit.fhirproxy.storage.providers import ProviderStore
from timkit.runtime.config import TimkitConfig
from timkit.runtime.demo import DemoOrganisation, demo_organisations
from timkit.runtime.layout import Layout
from timkit.runtime.plan import RD_PROVIDER, fhir_proxy_database, rd_token_signer, registration_url

TOTP_STEP = 30
POLL = 0.1
Progress = Callable[[str], None]


class OnboardingError(TimkitError):
    """A step of onboarding through the Registrierungs-Dienst failed (the message says which).

    A refusal by the RD or the IDP carries their 4xx status and ``errcode``; anything else
    is a 502 (or 504 for a timeout).
    """

    def __init__(self, message: str, status: int = 502, errcode: str = "TIMKIT_ONBOARDING") -> None:
        super().__init__(status, errcode, message)


# -- before the supervisor starts: the operator's part ---------------------------------------


def ensure_rd_provider(config: TimkitConfig) -> None:
    """Register the RD as a provider at the FHIR-Proxy (once) with its signing certificate.

    Idempotent: the credentials file is written once; the certificate is registered on every
    call (a re-issued certificate replaces nothing, it is added). A lost credentials file for
    a provider that still exists cannot be recovered (the proxy stores the secret's digest).

    Raises:
        OnboardingError: 409 when the provider exists but its credentials file is gone.
    """
    layout = Layout(config.data_dir)
    credentials = layout.provider_credentials
    stored: dict[str, Any] | None = None
    if credentials.exists():
        stored = json.loads(credentials.read_text("utf-8"))
    db = open_database(fhir_proxy_database(config))
    try:
        store = ProviderStore(db)
        if store.get(RD_PROVIDER) is None:
            secret = stored["client_secret"] if stored else None
            _, secret = store.add(RD_PROVIDER, "timkit Registrierungs-Dienst", secret=secret)
            if stored is None:
                body = {"client_id": RD_PROVIDER, "client_secret": secret}
                write_private(credentials, json.dumps(body))
        elif stored is None:
            raise OnboardingError(
                f"provider {RD_PROVIDER!r} exists at the FHIR-Proxy but {credentials} is gone",
                409,
            )
        signer = rd_token_signer(LocalPKI(layout.pki))
        store.add_certificate(RD_PROVIDER, signer.cert.read_bytes())
    finally:
        db.close()
    if not layout.proxies_token.exists():
        write_private(layout.proxies_token, secrets.token_urlsafe(32) + "\n")


# -- the Org-Admins' credentials ----------------------------------------------------------


@dataclass
class AdminCredentials:
    """One demo Org-Admin's login, as kept in ``demo-admins.json``.

    Attributes:
        organisation: the organisation's name.
        telematik_id: its TelematikID.
        username: the Org-Admin's username at the RD.
        password: the generated password.
        totp_secret: base32 TOTP secret returned at enrolment.
        active: whether the TOTP enrolment was confirmed.
        last_totp_step: the last TOTP time step used (each is accepted once).
        session: the last session token; reused while the RD accepts it, so a warm ``up``
            needs no TOTP code.
    """

    organisation: str
    telematik_id: str
    username: str
    password: str
    totp_secret: str
    active: bool = False
    last_totp_step: int = 0
    session: str = ""


def read_admins(layout: Layout) -> dict[str, AdminCredentials]:
    """The stored demo Org-Admins by TelematikID (empty when there is no file)."""
    try:
        document = json.loads(layout.demo_admins.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    return {
        tid: AdminCredentials(**entry) for tid, entry in document.get("organisations", {}).items()
    }


def _save_admins(config: TimkitConfig, admins: dict[str, AdminCredentials]) -> None:
    document = {
        "portal": registration_url(config),
        "organisations": {tid: asdict(a) for tid, a in sorted(admins.items())},
    }
    write_private(Layout(config.data_dir).demo_admins, json.dumps(document, indent=2) + "\n")


# -- the RD's JSON API ----------------------------------------------------------------------


def _error(response: httpx.Response, what: str) -> OnboardingError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if isinstance(body, dict) and "error" in body:
        message, errcode = str(body["error"]), str(body.get("errcode", "TIMKIT_ONBOARDING"))
    else:
        message, errcode = response.text[:300], "TIMKIT_ONBOARDING"
    status = response.status_code if 400 <= response.status_code < 500 else 502
    return OnboardingError(f"{what} answered {response.status_code}: {message}", status, errcode)


class RdClient:
    """An Org-Admin's view of the Registrierungs-Dienst's JSON API (module docstring).

    Args:
        base: the RD's base URL.
        http: a client trusting the RD's and the IDP's TLS certificates.
    """

    def __init__(self, base: str, http: httpx.AsyncClient) -> None:
        self.base = base.rstrip("/")
        self.http = http
        self.token = ""

    async def _json(
        self, method: str, path: str, what: str, expect: tuple[int, ...], **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.http.request(method, self.base + path, headers=headers, **kwargs)
        except httpx.HTTPError as e:
            raise OnboardingError(f"{what}: the RD at {self.base} is not reachable: {e}") from e
        if response.status_code not in expect:
            raise _error(response, what)
        body = response.json() if response.content else {}
        return response.status_code, body if isinstance(body, dict) else {}

    async def verify_with_card(self, card: str) -> dict[str, Any]:
        """AF_10103 Verfahren 1 with the virtual card ``card``: the callback's JSON answer
        (``registration_token``, ``organisation`` …).

        Raises:
            OnboardingError: naming the step; a refusal carries the RD's errcode and message
                (e.g. ``M_FORBIDDEN`` for an HBA card, ``M_ORG_HAS_ADMIN``).
        """
        _, started = await self._json(
            "POST", "/api/v1/organisations/oidc", "starting AF_10103", (200,), json={}
        )
        url = urlsplit(str(started["authorization_url"]))
        form = dict(parse_qsl(url.query))
        form["card"] = card
        endpoint = urlunsplit((url.scheme, url.netloc, url.path, "", ""))
        try:
            chosen = await self.http.post(endpoint, data=form)
        except httpx.HTTPError as e:
            raise OnboardingError(f"the IDP at {endpoint} is not reachable: {e}") from e
        if chosen.status_code != 302:
            raise _error(chosen, f"the IDP's card form ({card})")
        location = chosen.headers["location"]
        if not location.startswith(self.base + "/"):
            raise OnboardingError(f"the IDP redirected to {location}, not to the RD")
        _, verified = await self._json(
            "GET", location.removeprefix(self.base), "the RD's OIDC callback", (200,)
        )
        return verified

    async def create_account(
        self, registration_token: str, username: str, password: str
    ) -> dict[str, Any]:
        """``POST /api/v1/accounts``: the pending account with its ``totp_secret``."""
        body = {"registration_token": registration_token, "username": username}
        body["password"] = password
        _, created = await self._json(
            "POST", "/api/v1/accounts", "creating the Org-Admin account", (201,), json=body
        )
        return created

    async def confirm_totp(self, username: str, code: str) -> None:
        """``POST /api/v1/accounts/totp``: activate the account with its first code."""
        await self._json(
            "POST",
            "/api/v1/accounts/totp",
            "confirming the TOTP enrolment",
            (200,),
            json={"username": username, "code": code},
        )

    async def login(self, username: str, password: str, otp: str) -> None:
        """``POST /api/v1/login``; later calls carry the session token."""
        _, session = await self._json(
            "POST",
            "/api/v1/login",
            f"logging in as {username}",
            (200,),
            json={"username": username, "password": password, "otp": otp},
        )
        self.token = str(session["access_token"])

    async def session_valid(self) -> bool:
        """Whether the current session token is accepted (``GET /api/v1/account``)."""
        if not self.token:
            return False
        status, _ = await self._json(
            "GET", "/api/v1/account", "checking the session", (200, 401, 403)
        )
        return status == 200

    async def service(self, domain: str) -> dict[str, Any] | None:
        """``GET /api/v1/services/{domain}``, or None when the organisation has no such one."""
        status, body = await self._json(
            "GET", f"/api/v1/services/{quote(domain, safe='')}", f"status of {domain}", (200, 404)
        )
        return body if status == 200 else None

    async def provision(self, domain: str) -> dict[str, Any]:
        """``POST /api/v1/services {domain}`` (AF_10060): 202 with the service's state."""
        _, body = await self._json(
            "POST", "/api/v1/services", f"provisioning {domain}", (202,), json={"domain": domain}
        )
        return body

    async def deprovision(self, domain: str) -> dict[str, Any]:
        """``DELETE /api/v1/services/{domain}``: the domain leaves the federation first."""
        _, body = await self._json(
            "DELETE",
            f"/api/v1/services/{quote(domain, safe='')}",
            f"deprovisioning {domain}",
            (202,),
        )
        return body


async def next_otp(admin: AdminCredentials) -> str:
    """A TOTP code for a step after ``admin.last_totp_step``; records the step used.

    The RD accepts the current step and one either side, each once: when the next unused
    step is further ahead than that, this polls the clock until it is acceptable.
    """
    while True:
        current = int(time.time() // TOTP_STEP)
        step = max(current, admin.last_totp_step + 1)
        if step <= current + 1:
            admin.last_totp_step = step
            return pyotp.TOTP(admin.totp_secret).at(step * TOTP_STEP)
        await asyncio.sleep(POLL)


async def enrol_admin(
    rd: RdClient, org: DemoOrganisation, card: str | None = None
) -> AdminCredentials:
    """AF_10103 with ``org``'s SMC-B (or ``card``), then its Org-Admin account with TOTP.

    Returns the pending account's credentials; :func:`activate` confirms the enrolment.
    """
    verified = await rd.verify_with_card(card or org.key)
    username = f"admin-{org.key}"[:64]
    password = secrets.token_urlsafe(24)
    created = await rd.create_account(str(verified["registration_token"]), username, password)
    return AdminCredentials(
        organisation=str(created["organisation"]),
        telematik_id=str(created["telematikID"]),
        username=username,
        password=password,
        totp_secret=str(created["totp_secret"]),
    )


async def activate(rd: RdClient, admin: AdminCredentials) -> None:
    """Confirm the TOTP enrolment of a pending account with its first code."""
    await rd.confirm_totp(admin.username, await next_otp(admin))
    admin.active = True


async def login(rd: RdClient, admin: AdminCredentials) -> None:
    """Log in with password and a fresh TOTP code."""
    await rd.login(admin.username, admin.password, await next_otp(admin))


# -- onboarding the configured organisations -----------------------------------------------

Check = Callable[[str | None], None]
"""Called while polling (with the domain when the RD reports its service failed); raises when
the federation failed meanwhile, e.g. a component that keeps crashing, naming its log."""


async def _admin_session(
    config: TimkitConfig,
    rd: RdClient,
    org: DemoOrganisation,
    admins: dict[str, AdminCredentials],
    progress: Progress,
) -> None:
    admin = admins.get(org.telematik_id)
    if admin is None:
        progress(f"{org.name}: AF_10103 with SMC-B {org.key} at the IDP, Org-Admin account")
        try:
            admin = await enrol_admin(rd, org)
        except OnboardingError as e:
            if e.errcode == Codes.ORG_HAS_ADMIN:
                raise OnboardingError(
                    f"{e.message}; its credentials are not in {Layout(config.data_dir).demo_admins}"
                    f" (remove {Layout(config.data_dir).registration} to start over)",
                    409,
                ) from e
            raise
        admins[org.telematik_id] = admin
        _save_admins(config, admins)
    if not admin.active:
        await activate(rd, admin)
        _save_admins(config, admins)
    rd.token = admin.session
    if await rd.session_valid():
        return
    rd.token = ""
    try:
        await login(rd, admin)
        admin.session = rd.token
    finally:
        _save_admins(config, admins)


async def _ensure_service(rd: RdClient, domain: str, progress: Progress) -> bool:
    """Request ``domain`` unless the RD has it (being) provisioned; whether it was requested."""
    current = await rd.service(domain)
    if current is not None and current["state"] not in ("failed", "deleted"):
        return False
    progress(f"{domain}: AF_10060 requested")
    await rd.provision(domain)
    return True


async def _await_active(
    rd: RdClient, domain: str, deadline: float, progress: Progress, check: Check
) -> None:
    shown = ""
    while True:
        current = await rd.service(domain)
        if current is None:
            raise OnboardingError(f"{domain}: the RD lost the service")
        if current["state"] != shown:
            shown = str(current["state"])
            progress(f"{domain}: {shown} ({current['progress']} %) {current['description']}")
        if current["state"] == "active":
            return
        failed = current["state"] == "failed"
        check(domain if failed else None)
        if failed:
            raise OnboardingError(f"{domain}: provisioning failed: {current['error']}")
        if time.monotonic() > deadline:
            raise OnboardingError(f"{domain}: not active in time (state {shown})", 504)
        await asyncio.sleep(POLL)


async def onboard(
    config: TimkitConfig, *, deadline: float, progress: Progress, check: Check
) -> list[str]:
    """Onboard every configured organisation through the RD (module docstring), the
    organisations concurrently.

    Args:
        config: the federation's configuration.
        deadline: ``time.monotonic()`` by which every service must be active.
        progress: receives one line per step.
        check: called while polling; raises to abort (e.g. a component keeps crashing).

    Returns:
        The domains provisioned now (empty on a warm ``up`` with everything active).

    Raises:
        OnboardingError: naming the organisation, the step and the RD's answer.
    """
    layout = Layout(config.data_dir)
    admins = read_admins(layout)
    requested: list[str] = []
    async with async_client(layout.ca_cert, timeout=30.0) as http:

        async def organisation(org: DemoOrganisation) -> None:
            rd = RdClient(registration_url(config), http)
            await _admin_session(config, rd, org, admins, progress)
            for domain in org.domains:
                if await _ensure_service(rd, domain, progress):
                    requested.append(domain)
            await asyncio.gather(
                *(_await_active(rd, d, deadline, progress, check) for d in org.domains)
            )

        await asyncio.gather(*map(organisation, demo_organisations(config.messenger_services)))
    return requested
