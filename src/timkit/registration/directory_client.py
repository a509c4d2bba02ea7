"""The Registrierungs-Dienst as a TI-M provider at the VZD-FHIR-Directory's FHIR-Proxy.

Authentication (seed 002 §4.2.3, I_VZD_TIM_Provider_Services)::

    POST /token (client credentials)           → ti-provider token
    GET  /ti-provider-authenticate (Bearer)    → provider-accesstoken

The provider-accesstoken is cached until :data:`RENEW_BEFORE` seconds before it expires, and
fetched again once when the directory answers 401 (a restarted directory forgets tokens).

Calls (all under ``/tim-provider-services``):

* :meth:`DirectoryClient.add_domain` ``POST /federation``;
* :meth:`DirectoryClient.delete_domain` ``DELETE /federation/{domain}`` (404 = already gone);
* :meth:`DirectoryClient.get_domain` / :meth:`~DirectoryClient.get_domains` ``GET /federation``;
* :meth:`DirectoryClient.domain_owner` whether a domain is ours, another provider's or free;
* :meth:`DirectoryClient.federation_list` ``GET /FederationList/federationList.jws?version=``
  (204 = the held version is current);
* :meth:`DirectoryClient.where_is` ``GET /localization?mxid=`` (whereIs).

Errors are :class:`TimkitError` carrying the directory's status and its message; a directory
that cannot be reached, times out or answers 5xx is a :class:`TemporaryUpstreamError`
(retriable, status 503).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx

from timkit.core.errors import ConfigError, TemporaryUpstreamError, TimkitError
from timkit.core.http import async_client
from timkit.registration.config import DirectorySettings

BASE = "/tim-provider-services"
RENEW_BEFORE = 30.0
"""Seconds before expiry at which a cached provider-accesstoken is fetched anew."""


class Ownership(Enum):
    """Whom a domain belongs to at the directory."""

    FREE = "free"
    OURS = "ours"
    OTHER = "other"


@dataclass(frozen=True)
class DirectoryDomain:
    """A domain as the directory holds it (the API's ``Domain``)."""

    domain: str
    telematik_id: str
    is_insurance: bool
    tim_anbieter: str

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> DirectoryDomain:
        """Parse one ``Domain`` object."""
        return cls(
            str(body.get("domain", "")),
            str(body.get("telematikID", "")),
            bool(body.get("isInsurance", False)),
            str(body.get("timAnbieter", "")),
        )


def read_secret(settings: DirectorySettings) -> str:
    """The client secret from ``client_secret`` or ``client_secret_file``.

    Raises:
        ConfigError: when neither is set, or the file cannot be read.
    """
    if settings.client_secret:
        return settings.client_secret
    if settings.client_secret_file is None:
        raise ConfigError("set client_secret or client_secret_file", path="directory")
    try:
        text = settings.client_secret_file.read_text("utf-8").strip()
    except OSError as e:
        raise ConfigError(f"cannot read: {e}", path="directory.client_secret_file") from e
    if text.startswith("{"):
        try:
            return str(json.loads(text)["client_secret"])
        except (ValueError, KeyError) as e:
            raise ConfigError(
                "JSON without client_secret", path="directory.client_secret_file"
            ) from e
    return text


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "diagnostics"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text[:300]


class DirectoryClient:
    """HTTP client of the FHIR-Proxy's provider interface (see the module docstring).

    Args:
        settings: the provider account.
        clock: wall clock (seconds) for token expiry, injectable for tests.
    """

    def __init__(
        self, settings: DirectorySettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.base = settings.base_url.rstrip("/")
        self.clock = clock
        self._http = async_client(settings.ca_file, timeout=settings.timeout)
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        """Whether a directory and a provider account are configured."""
        return bool(self.base and self.settings.client_id)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    # -- transport ------------------------------------------------------------------------

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if not self.configured:
            raise TimkitError(
                503, "TIMKIT_UPSTREAM", "no VZD-FHIR-Directory configured (directory.base_url)"
            )
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as e:
            raise _unavailable(f"VZD-FHIR-Directory unreachable: {type(e).__name__} {e}") from e
        if response.status_code >= 500:
            raise _unavailable(
                f"VZD-FHIR-Directory answered {response.status_code}: {_message(response)}"
            )
        return response

    async def provider_token(self) -> str:
        """A valid provider-accesstoken (cached until shortly before it expires)."""
        async with self._lock:
            if self._token is not None and self.clock() < self._expires - RENEW_BEFORE:
                return self._token
            secret = read_secret(self.settings)
            response = await self._send(
                "POST",
                f"{self.base}/token",
                data={"grant_type": "client_credentials"},
                auth=(self.settings.client_id, secret),
            )
            _raise_for(response, "/token")
            ti_token = response.json()["access_token"]
            response = await self._send(
                "GET",
                f"{self.base}/ti-provider-authenticate",
                headers={"Authorization": f"Bearer {ti_token}"},
            )
            _raise_for(response, "/ti-provider-authenticate")
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = self.clock() + float(body.get("expires_in", 300))
            return self._token

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``method`` on a provider-services ``path`` with the provider-accesstoken."""
        for attempt in (1, 2):
            token = await self.provider_token()
            response = await self._send(
                method,
                f"{self.base}{BASE}{path}",
                headers={"Authorization": f"Bearer {token}"},
                **kwargs,
            )
            if response.status_code != 401 or attempt == 2:
                return response
            async with self._lock:
                self._token = None
        raise AssertionError("unreachable")

    # -- domains --------------------------------------------------------------------------

    async def add_domain(
        self, domain: str, telematik_id: str, is_insurance: bool = False
    ) -> DirectoryDomain:
        """Register ``domain`` for the organisation ``telematik_id`` (AF_10060).

        Raises:
            TimkitError: 409 when the domain is registered already (by anyone), 400 when the
                directory refuses it (e.g. no active Organization with that TelematikID).
        """
        body = {"domain": domain, "telematikID": telematik_id, "isInsurance": is_insurance}
        response = await self._call("POST", "/federation", json=body)
        _raise_for(response, "POST /federation")
        return DirectoryDomain.from_api(response.json())

    async def delete_domain(self, domain: str) -> bool:
        """Remove one of our domains from the federation; False when it was not registered.

        Raises:
            TimkitError: 403 when another provider registered it.
        """
        response = await self._call("DELETE", f"/federation/{domain}")
        if response.status_code == 404:
            return False
        _raise_for(response, "DELETE /federation")
        return True

    async def get_domains(self) -> list[DirectoryDomain]:
        """Every domain this provider registered."""
        response = await self._call("GET", "/federation")
        _raise_for(response, "GET /federation")
        return [DirectoryDomain.from_api(d) for d in response.json()]

    async def get_domain(self, domain: str) -> DirectoryDomain | None:
        """Our registration of ``domain``, or None when it is not registered at all.

        Raises:
            TimkitError: 403 when another provider registered it.
        """
        response = await self._call("GET", "/federation", params={"domain": domain})
        if response.status_code == 404:
            return None
        _raise_for(response, "GET /federation")
        found = response.json()
        return DirectoryDomain.from_api(found[0]) if found else None

    async def domain_owner(self, domain: str) -> Ownership:
        """Whether ``domain`` is free at the directory, ours, or another provider's."""
        response = await self._call("GET", "/federation", params={"domain": domain})
        if response.status_code == 404:
            return Ownership.FREE
        if response.status_code == 403:
            return Ownership.OTHER
        _raise_for(response, "GET /federation")
        return Ownership.OURS

    # -- federation list and whereIs ------------------------------------------------------

    async def federation_list(
        self, held_version: int | None, sig_alg: str = "BP256R1"
    ) -> tuple[int, bytes] | None:
        """The newest signed federation list, or None when ``held_version`` is current.

        Returns:
            ``(version, jws)``: the version read from the (unverified) payload and the compact
            JWS exactly as received. Verification is the caller's job.
        """
        params = {"sigAlg": sig_alg}
        if held_version is not None:
            params["version"] = str(held_version)
        response = await self._call("GET", "/FederationList/federationList.jws", params=params)
        if response.status_code == 204:
            return None
        _raise_for(response, "GET /FederationList/federationList.jws")
        return _peek_version(response.content), response.content

    async def where_is(self, mxid: str) -> str:
        """Where ``mxid`` is in the directory: ``org``, ``pract``, ``orgPract`` or ``none``.

        An MXID without any Endpoint in the directory is ``none``.
        """
        response = await self._call("GET", "/localization", params={"mxid": mxid})
        if response.status_code == 404:
            return "none"
        _raise_for(response, "GET /localization")
        where = response.json()
        if where not in ("org", "pract", "orgPract", "none"):
            raise TemporaryUpstreamError(f"unexpected localization answer {where!r}")
        return str(where)


def _unavailable(message: str) -> TimkitError:
    error = TemporaryUpstreamError(message)
    error.status = 503
    return error


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 300:
        return
    raise TimkitError(
        response.status_code if response.status_code < 500 else 502,
        "TIMKIT_DIRECTORY",
        f"VZD-FHIR-Directory {what} answered {response.status_code}: {_message(response)}",
    )


def _peek_version(jws: bytes) -> int:
    """The ``version`` claimed by a compact JWS payload (not verified); -1 when unreadable."""
    try:
        payload = jws.split(b".")[1]
        document = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        version = document["version"]
    except (IndexError, ValueError, KeyError, TypeError):
        return -1
    return version if isinstance(version, int) and not isinstance(version, bool) else -1
