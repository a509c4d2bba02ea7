"""Provisioning backends: what starts and stops a Messenger-Service's processes.

The RD's state machine (:mod:`.state_machine`) only ever calls the three methods of
:class:`ProvisioningBackend`; each is idempotent, so a step repeated after a crash is harmless:

* ``ensure(domain, organisation)``: make the service exist and start it (again) if needed;
* ``status(domain)``: how it is doing (None when the backend does not know the domain);
* ``remove(domain)``: stop it and delete its processes (a domain it does not know is fine).

The domain's registration at the VZD-FHIR-Directory is never the backend's business: the RD
does it, after the backend reports the service running and healthy (ADR 0005).

:class:`EmbeddedBackend` is the HTTP client of the local runtime's control API, served by
``timkit supervise`` on loopback with a bearer token from ``<data>/run/control-token``::

    GET    /services                 [ServiceStatus]
    PUT    /services/{domain}        {"organisation"} → 201 created / 200 existed: ServiceStatus
    GET    /services/{domain}        ServiceStatus, 404 M_NOT_FOUND when unknown
    DELETE /services/{domain}        stops and removes it (404 when unknown)

with ``ServiceStatus = {domain, organisation, phase: starting|running|failed|stopping,
healthy, client_url, federation_url}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import httpx

from timkit.core.errors import ConfigError, TemporaryUpstreamError, TimkitError
from timkit.core.http import async_client
from timkit.registration.config import EmbeddedSettings


class Phase(StrEnum):
    """Lifecycle phase of a backend service."""

    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    STOPPING = "stopping"


@dataclass(frozen=True)
class BackendStatus:
    """What a backend reports about one service.

    Attributes:
        domain: the service's Matrix server name.
        phase: its lifecycle phase.
        healthy: whether its homeserver and proxy answer their health checks.
        client_url: where clients reach it.
        federation_url: where other homeservers reach it.
    """

    domain: str
    phase: Phase
    healthy: bool
    client_url: str = ""
    federation_url: str = ""

    @property
    def ready(self) -> bool:
        """Running and healthy: the domain may join the federation."""
        return self.phase is Phase.RUNNING and self.healthy


class ProvisioningBackend(Protocol):
    """Creates, reports and removes Messenger-Services (see the module docstring)."""

    async def ensure(self, domain: str, organisation: str) -> BackendStatus:
        """Create and start the service if needed; idempotent."""

    async def status(self, domain: str) -> BackendStatus | None:
        """The service's status, or None when the backend does not know ``domain``."""

    async def remove(self, domain: str) -> None:
        """Stop and delete the service; idempotent (an unknown domain is fine)."""

    async def aclose(self) -> None:
        """Release connections."""


def _unavailable(message: str) -> TimkitError:
    error = TemporaryUpstreamError(message)
    error.status = 503
    return error


def _status(body: dict[str, Any]) -> BackendStatus:
    try:
        return BackendStatus(
            domain=str(body["domain"]),
            phase=Phase(body["phase"]),
            healthy=bool(body.get("healthy", False)),
            client_url=str(body.get("client_url") or ""),
            federation_url=str(body.get("federation_url") or ""),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise TemporaryUpstreamError(f"runtime control API sent a bad ServiceStatus: {e}") from e


class EmbeddedBackend:
    """:class:`ProvisioningBackend` over the local runtime's control API."""

    def __init__(self, settings: EmbeddedSettings) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self._http = async_client(settings.ca_file, timeout=settings.timeout)

    def _token(self) -> str:
        if self.settings.token_file is None:
            raise ConfigError("set token_file", path="provisioning.embedded.token_file")
        try:
            return self.settings.token_file.read_text("utf-8").strip()
        except OSError as e:
            # The supervisor writes it on start; until then the runtime is not up.
            raise _unavailable(f"runtime control token not readable: {e}") from e

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if not self.base:
            raise TimkitError(
                503, "TIMKIT_UPSTREAM", "no provisioning backend configured (provisioning.embedded)"
            )
        headers = {"Authorization": f"Bearer {self._token()}"}
        try:
            response = await self._http.request(method, self.base + path, headers=headers, **kwargs)
        except httpx.HTTPError as e:
            raise _unavailable(f"runtime control API unreachable: {type(e).__name__} {e}") from e
        if response.status_code >= 500:
            raise _unavailable(f"runtime control API answered {response.status_code}")
        if response.status_code >= 400 and response.status_code != 404:
            raise TimkitError(
                502,
                "TIMKIT_UPSTREAM",
                f"runtime control API {method} {path} answered {response.status_code}:"
                f" {response.text[:300]}",
            )
        return response

    async def ensure(self, domain: str, organisation: str) -> BackendStatus:
        """``PUT /services/{domain}``."""
        response = await self._request(
            "PUT", f"/services/{domain}", json={"organisation": organisation}
        )
        if response.status_code == 404:
            raise TimkitError(502, "TIMKIT_UPSTREAM", "runtime control API has no /services")
        return _status(response.json())

    async def status(self, domain: str) -> BackendStatus | None:
        """``GET /services/{domain}``; None on 404."""
        response = await self._request("GET", f"/services/{domain}")
        if response.status_code == 404:
            return None
        return _status(response.json())

    async def remove(self, domain: str) -> None:
        """``DELETE /services/{domain}``; 404 counts as removed."""
        await self._request("DELETE", f"/services/{domain}")

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()
