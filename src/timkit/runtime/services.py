"""Client of the supervisor's control API: Messenger-Services come and go at run time.

The supervisor (``timkit supervise``) serves the control API on loopback
(``http://<runtime.bind>:<runtime.control_port>``), the server side of the embedded
provisioning backend (:mod:`timkit.runtime.control_api`). Every request but ``GET /health``
carries ``Authorization: Bearer <token>``, the token in ``<data>/run/control-token``
(mode 0600, created by ``timkit up``). ``timkit up`` and, later, the Registrierungs-Dienst
use :class:`ServiceControl`::

    async with ServiceControl.for_config(config) as control:
        status, created = await control.ensure("praxis.tim.test", "Praxis")
        await control.wait_healthy("praxis.tim.test", timeout=60)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from timkit.core.errors import Codes, TimkitError
from timkit.core.files import write_private
from timkit.core.http import async_client
from timkit.runtime.config import TimkitConfig
from timkit.runtime.layout import Layout

ServicePhase = Literal["starting", "running", "failed", "stopping"]


class ServiceStatus(BaseModel):
    """One Messenger-Service as the control API reports it.

    Attributes:
        domain: Matrix server name.
        organisation: the organisation's display name.
        phase: ``starting`` until both processes run (and while one restarts), ``running``,
            ``failed`` when the supervisor gave up on one, ``stopping`` while it is removed.
        healthy: both processes answer their health checks.
        client_url: where Matrix clients reach the homeserver.
        federation_url: where other homeservers reach it (via their forward proxy).
    """

    domain: str
    organisation: str
    phase: ServicePhase
    healthy: bool
    client_url: str
    federation_url: str


def control_url(config: TimkitConfig) -> str:
    """Base URL of the control API of the federation configured by ``config``."""
    return f"http://{config.runtime.bind}:{config.runtime.control_port}"


def ensure_control_token(layout: Layout) -> str:
    """The control API's bearer token, created (random, mode 0600) when there is none."""
    try:
        return read_control_token(layout)
    except TimkitError:
        pass
    token = secrets.token_urlsafe(32)
    write_private(layout.control_token, token + "\n")
    return token


def read_control_token(layout: Layout) -> str:
    """The control API's bearer token.

    Raises:
        TimkitError: 503 when the token file does not exist or is empty.
    """
    try:
        token = layout.control_token.read_text("utf-8").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        raise TimkitError(
            503, Codes.UNKNOWN, f"no control token at {layout.control_token}; run 'timkit up'"
        )
    return token


class ServiceControl:
    """Async client of the control API (see the module docstring).

    Args:
        base_url: ``http://host:port`` of the control API.
        token: the bearer token.
        timeout: seconds per request.

    Errors the API answers with are raised as :class:`TimkitError` with the API's status,
    ``errcode`` and message; an unreachable API is a 503 ``TimkitError``.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._http = async_client(timeout=timeout)

    @classmethod
    def for_config(cls, config: TimkitConfig, *, timeout: float = 10.0) -> ServiceControl:
        """A client of the local federation's control API (token read from the data dir)."""
        token = read_control_token(Layout(config.data_dir))
        return cls(control_url(config), token, timeout=timeout)

    async def __aenter__(self) -> ServiceControl:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def health(self) -> bool:
        """Whether the control API answers ``GET /health`` (no token needed)."""
        try:
            response = await self._http.get(f"{self._base}/health")
        except httpx.HTTPError:
            return False
        return response.is_success

    async def services(self) -> list[ServiceStatus]:
        """Every provisioned Messenger-Service."""
        body = await self._call("GET", "/services", expect=(200,))
        return [_status(s) for s in body[1].get("services", [])]

    async def ensure(self, domain: str, organisation: str) -> tuple[ServiceStatus, bool]:
        """Provision ``domain`` unless it exists (``PUT``); returns its status and whether it
        was created. Returns at once: poll :meth:`wait_healthy` for readiness.

        Raises:
            TimkitError: 400 for an invalid domain or body, 409 when the domain exists for
                another organisation.
        """
        status, body = await self._call(
            "PUT", _path(domain), json={"organisation": organisation}, expect=(200, 201)
        )
        return _status(body), status == 201

    async def status(self, domain: str) -> ServiceStatus | None:
        """The status of ``domain``, or ``None`` when it is not provisioned."""
        status, body = await self._call("GET", _path(domain), expect=(200, 404))
        return _status(body) if status == 200 else None

    async def remove(self, domain: str) -> bool:
        """Stop and delete ``domain`` with its data; False when it was not provisioned."""
        status, _ = await self._call("DELETE", _path(domain), expect=(200, 404))
        return status == 200

    async def wait_healthy(
        self, domain: str, *, timeout: float = 90.0, interval: float = 0.1
    ) -> ServiceStatus:
        """Poll until ``domain`` is healthy.

        Raises:
            TimkitError: 404 when it is not provisioned, 502 when it failed, 504 on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            current = await self.status(domain)
            if current is None:
                raise TimkitError(404, Codes.NOT_FOUND, f"no Messenger-Service {domain!r}")
            if current.healthy:
                return current
            if current.phase == "failed":
                raise TimkitError(
                    502, Codes.UPSTREAM, f"{domain} failed to start; see the runtime's logs"
                )
            if time.monotonic() > deadline:
                raise TimkitError(504, Codes.UNKNOWN, f"{domain} not healthy after {timeout:.0f}s")
            await asyncio.sleep(interval)

    async def _call(
        self, method: str, path: str, *, expect: tuple[int, ...], json: Any = None
    ) -> tuple[int, dict[str, Any]]:
        try:
            response = await self._http.request(
                method, self._base + path, json=json, headers=self._headers
            )
        except httpx.HTTPError as e:
            raise TimkitError(
                503, Codes.UNKNOWN, f"the control API at {self._base} is not reachable: {e}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code in expect:
            return response.status_code, body
        raise TimkitError(
            response.status_code,
            str(body.get("errcode", Codes.UNKNOWN)),
            str(body.get("error", response.text or response.reason_phrase)),
        )


def _path(domain: str) -> str:
    return f"/services/{quote(domain, safe='')}"


def _status(body: Any) -> ServiceStatus:
    try:
        return ServiceStatus.model_validate(body)
    except ValidationError as e:
        raise TimkitError(502, Codes.UPSTREAM, f"the control API answered nonsense: {e}") from None
