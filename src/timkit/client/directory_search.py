"""Search the VZD-FHIR-Directory for chat partners (AF_10061, ML-123654).

The way of the VZD search HOWTO and Client.adoc: a Matrix OpenID token is exchanged at
``/tim-authenticate`` for a ``search-accesstoken`` (:func:`~timkit.client.openid.tim_authenticate`),
which is cached until :meth:`~timkit.client.openid.SearchToken.fresh` says otherwise (one
exchange per token lifetime; a ``401`` from ``/search`` drops it and the search is retried
once with a new one). Searches:

* **practitioners:** ``GET /search/PractitionerRole?practitioner.active=true`` with
  ``_include`` of the practitioner, organisation, service, location and endpoint, and
  ``endpoint.status=active&endpoint.connection-type=tim``; by practitioner name, TelematikID
  (``practitioner.identifier``), MXID (``endpoint.address``) or city
  (``location.address-city``);
* **organisations:** ``GET /search/HealthcareService?organization.active=true`` with the same
  includes, by organisation name, TelematikID (``organization.identifier``), MXID or city.

Each matching resource becomes a :class:`DirectoryHit` naming the HealthcareService, the
organisation and the endpoint names together (api-vzd#167), with only its active TI-M
endpoints; a match without one is not a chat partner and is left out. Parsing
(:func:`hits_of`) is pure.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from timkit.client.fhir_api import (
    Params,
    as_dict,
    as_list,
    fhir_call,
    mxid_uri,
    person_name,
    user_id,
)
from timkit.client.openid import OpenIdToken, SearchToken, tim_authenticate
from timkit.core.errors import Codes, TimkitError
from timkit.core.fhir import CONNECTION_TYPE, TELEMATIK_ID

HitKind = Literal["practitioner", "organisation"]
TIM_CONNECTION = "tim"
ENDPOINT_VISIBILITY = "https://gematik.de/fhir/directory/StructureDefinition/EndpointVisibility"
HIDE_INSURED = "hide-versicherte"
DEFAULT_COUNT = 20
_TELEMATIK_ID = re.compile(r"\d{1,2}-[\w.\-]+")

_PRACTITIONER_BASE: Params = (
    ("practitioner.active", "true"),
    ("_include", "PractitionerRole:practitioner"),
    ("_include", "PractitionerRole:organization"),
    ("_include", "PractitionerRole:service"),
    ("_include", "PractitionerRole:location"),
    ("_include", "PractitionerRole:endpoint"),
    ("endpoint.status", "active"),
    ("endpoint.connection-type", TIM_CONNECTION),
)
_ORGANISATION_BASE: Params = (
    ("organization.active", "true"),
    ("_include", "HealthcareService:organization"),
    ("_include", "HealthcareService:location"),
    ("_include", "HealthcareService:endpoint"),
    ("endpoint.status", "active"),
    ("endpoint.connection-type", TIM_CONNECTION),
)


@dataclass(frozen=True)
class DirectoryEndpoint:
    """An active TI-M endpoint of a hit.

    Attributes:
        mxid: the Matrix user id (``@localpart:domain``) to invite.
        name: the endpoint's name, when it has one.
        hidden_from_insured: ``EndpointVisibility`` ``hide-versicherte`` is set.
    """

    mxid: str
    name: str | None
    hidden_from_insured: bool


@dataclass(frozen=True)
class DirectoryHit:
    """A chat partner found in the VZD.

    Attributes:
        kind: ``practitioner`` (a PractitionerRole) or ``organisation`` (a
            HealthcareService).
        name: the practitioner's name, or the HealthcareService's name.
        telematik_id: the practitioner's or the organisation's TelematikID.
        organisation: the organisation's name (a practitioner's employer, when linked).
        healthcare_service: the HealthcareService's name (a practitioner's, when linked).
        city: the first linked Location's city.
        endpoints: the active TI-M endpoints (at least one).
        reference: the matched resource, ``PractitionerRole/<id>`` or
            ``HealthcareService/<id>``.
    """

    kind: HitKind
    name: str
    telematik_id: str | None
    organisation: str | None
    healthcare_service: str | None
    city: str | None
    endpoints: tuple[DirectoryEndpoint, ...]
    reference: str

    @property
    def mxids(self) -> tuple[str, ...]:
        """The endpoints' Matrix user ids."""
        return tuple(e.mxid for e in self.endpoints)

    def label(self) -> str:
        """One line naming the HealthcareService, organisation and endpoint names together
        (api-vzd#167), e.g. ``Kardiologie - Klinikum Nord - Empfang (Berlin)``."""
        parts = [self.name]
        for extra in (self.healthcare_service, self.organisation):
            if extra and extra not in parts:
                parts.append(extra)
        for endpoint in self.endpoints:
            if endpoint.name and endpoint.name not in parts:
                parts.append(endpoint.name)
        city = f" ({self.city})" if self.city else ""
        return " - ".join(parts) + city


class DirectorySearch:
    """VZD searches of one actor, with the search-accesstoken cached.

    Args:
        http: the client to send with (trusting the VZD's TLS certificate).
        directory_url: base URL of the FHIR-Proxy and Auth-Service.
        openid: gives a fresh Matrix OpenID token of the actor (called once per exchange).
        token: a search-accesstoken kept from before (e.g. in the actor's profile), used
            while it is fresh and accepted.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        directory_url: str,
        openid: Callable[[], Awaitable[OpenIdToken]],
        token: SearchToken | None = None,
    ) -> None:
        self.http = http
        self.directory_url = directory_url.rstrip("/")
        self._openid = openid
        self._token = token
        self._lock = asyncio.Lock()
        self.exchanges = 0
        """How many times a search-accesstoken was obtained at ``/tim-authenticate``."""

    async def token(self) -> SearchToken:
        """The cached search-accesstoken, or a new one when it is missing or not fresh.

        Raises:
            TimkitError: the exchange failed (:func:`~timkit.client.openid.tim_authenticate`).
        """
        async with self._lock:
            if self._token is None or not self._token.fresh():
                self._token = await tim_authenticate(
                    self.http, self.directory_url, await self._openid()
                )
                self.exchanges += 1
            return self._token

    @property
    def cached_token(self) -> SearchToken | None:
        """The search-accesstoken in use (to keep it, e.g. in the actor's profile)."""
        return self._token

    def seed(self, token: SearchToken) -> None:
        """Use ``token`` from now on, while it is fresh and the FHIR-Proxy accepts it."""
        self._token = token

    async def _drop(self, token: SearchToken) -> None:
        async with self._lock:
            if self._token is token:
                self._token = None

    async def bundle(self, resource_type: str, params: Params) -> dict[str, Any]:
        """``GET /search/<resource_type>`` with ``params``: the searchset Bundle.

        Raises:
            TimkitError: the FHIR-Proxy's error (status, diagnostics, requirement), also
                after the one retry with a new token on a 401; 502 for an answer that is
                not a searchset Bundle.
        """
        url = f"{self.directory_url}/search/{resource_type}"
        token = await self.token()
        try:
            bundle = await fhir_call(self.http, "GET", url, token.access_token, params=params)
        except TimkitError as e:
            if e.status != 401:
                raise
            await self._drop(token)
            token = await self.token()
            bundle = await fhir_call(self.http, "GET", url, token.access_token, params=params)
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
            raise TimkitError(
                502, Codes.UPSTREAM, f"/search/{resource_type} did not answer a searchset Bundle"
            )
        return bundle

    async def practitioners(
        self,
        *,
        name: str | None = None,
        telematik_id: str | None = None,
        mxid: str | None = None,
        city: str | None = None,
        count: int = DEFAULT_COUNT,
    ) -> list[DirectoryHit]:
        """Practitioners (PractitionerRoles) reachable over TI-M matching every given
        criterion; ``mxid`` matches exactly (either MXID notation)."""
        params = list(_PRACTITIONER_BASE)
        if name:
            params.append(("practitioner.name", name))
        if telematik_id:
            params.append(("practitioner.identifier", f"{TELEMATIK_ID}|{telematik_id}"))
        return await self._hits(
            "PractitionerRole", "practitioner", params, mxid=mxid, city=city, count=count
        )

    async def organisations(
        self,
        *,
        name: str | None = None,
        telematik_id: str | None = None,
        mxid: str | None = None,
        city: str | None = None,
        count: int = DEFAULT_COUNT,
    ) -> list[DirectoryHit]:
        """Organisations (HealthcareServices) reachable over TI-M matching every given
        criterion; ``name`` is the organisation's name, ``mxid`` matches exactly."""
        params = list(_ORGANISATION_BASE)
        if name:
            params.append(("organization.name", name))
        if telematik_id:
            params.append(("organization.identifier", f"{TELEMATIK_ID}|{telematik_id}"))
        return await self._hits(
            "HealthcareService", "organisation", params, mxid=mxid, city=city, count=count
        )

    async def search(self, text: str, *, count: int = DEFAULT_COUNT) -> list[DirectoryHit]:
        """Practitioners and organisations for what an actor typed: an MXID (``@…`` or
        ``matrix:u/…``), a TelematikID (``<digits>-…``) or else a name."""
        text = text.strip()
        criteria: dict[str, str]
        if text.startswith(("@", "matrix:u/")):
            criteria = {"mxid": text}
        elif _TELEMATIK_ID.fullmatch(text):
            criteria = {"telematik_id": text}
        else:
            criteria = {"name": text}
        people, organisations = await asyncio.gather(
            self.practitioners(count=count, **criteria),
            self.organisations(count=count, **criteria),
        )
        return [*people, *organisations]

    async def _hits(
        self,
        resource_type: str,
        kind: HitKind,
        params: list[tuple[str, str]],
        *,
        mxid: str | None,
        city: str | None,
        count: int,
    ) -> list[DirectoryHit]:
        wanted = None
        if mxid:
            address = mxid_uri(mxid)
            wanted = user_id(address)
            params.append(("endpoint.address", address))
        if city:
            params.append(("location.address-city", city))
        params.append(("_count", str(max(1, min(count, 100)))))
        hits = hits_of(await self.bundle(resource_type, params), kind)
        if wanted is not None:
            hits = [h for h in hits if wanted in h.mxids]
        return hits


# --- parsing (pure) ---------------------------------------------------------------------------


def hits_of(bundle: Mapping[str, Any], kind: HitKind) -> list[DirectoryHit]:
    """The chat partners in a searchset ``bundle`` of PractitionerRoles (``practitioner``)
    or HealthcareServices (``organisation``), in the Bundle's order.

    Included resources are looked up by ``<type>/<id>``; matches without an active TI-M
    endpoint are left out; malformed entries are skipped.
    """
    primary = "PractitionerRole" if kind == "practitioner" else "HealthcareService"
    resources: dict[str, dict[str, Any]] = {}
    matches: list[dict[str, Any]] = []
    for entry in as_list(bundle.get("entry")):
        resource = as_dict(as_dict(entry).get("resource"))
        resource_type, resource_id = resource.get("resourceType"), resource.get("id")
        if not isinstance(resource_type, str) or not isinstance(resource_id, str):
            continue
        resources[f"{resource_type}/{resource_id}"] = resource
        mode = as_dict(as_dict(entry).get("search")).get("mode")
        if resource_type == primary and mode in (None, "match"):
            matches.append(resource)
    hits = []
    for match in matches:
        hit = _hit(match, kind, resources)
        if hit is not None:
            hits.append(hit)
    return hits


def _hit(
    match: dict[str, Any], kind: HitKind, resources: Mapping[str, dict[str, Any]]
) -> DirectoryHit | None:
    def linked(value: Any) -> dict[str, Any]:
        return resources.get(str(as_dict(value).get("reference", "")), {})

    endpoints = tuple(
        e for e in (_endpoint(linked(ref)) for ref in as_list(match.get("endpoint"))) if e
    )
    if not endpoints:
        return None
    locations = [linked(ref) for ref in as_list(match.get("location"))]
    city = next((c for c in (_city(loc) for loc in locations) if c), None)
    if kind == "practitioner":
        practitioner = linked(match.get("practitioner"))
        organisation = linked(match.get("organization"))
        services = [linked(ref) for ref in as_list(match.get("healthcareService"))]
        service = next((s for s in services if _text(s.get("name"))), {})
        return DirectoryHit(
            kind=kind,
            name=person_name(practitioner) or "(ohne Namen)",
            telematik_id=_telematik_id(practitioner) or _telematik_id(match),
            organisation=_text(organisation.get("name")),
            healthcare_service=_text(service.get("name")),
            city=city,
            endpoints=endpoints,
            reference=f"PractitionerRole/{match['id']}",
        )
    organisation = linked(match.get("providedBy"))
    return DirectoryHit(
        kind=kind,
        name=_text(match.get("name")) or _text(organisation.get("name")) or "(ohne Namen)",
        telematik_id=_telematik_id(organisation) or _telematik_id(match),
        organisation=_text(organisation.get("name")),
        healthcare_service=_text(match.get("name")),
        city=city or _city_of_organisation(organisation),
        endpoints=endpoints,
        reference=f"HealthcareService/{match['id']}",
    )


def is_tim_endpoint(endpoint: Mapping[str, Any]) -> bool:
    """Whether ``endpoint`` is a TI-M Endpoint (``connectionType`` ``tim``)."""
    connection = as_dict(endpoint.get("connectionType"))
    return connection.get("code") == TIM_CONNECTION and connection.get("system") in (
        None,
        CONNECTION_TYPE,
    )


def _endpoint(endpoint: dict[str, Any]) -> DirectoryEndpoint | None:
    if endpoint.get("status") != "active" or not is_tim_endpoint(endpoint):
        return None
    mxid = user_id(str(endpoint.get("address", "")))
    if mxid is None:
        return None
    hidden = any(
        as_dict(ext).get("url") == ENDPOINT_VISIBILITY
        and HIDE_INSURED in _codes(as_dict(ext).get("valueCoding"))
        for ext in as_list(endpoint.get("extension"))
    )
    return DirectoryEndpoint(mxid, _text(endpoint.get("name")), hidden)


def _codes(coding: Any) -> set[str]:
    return {str(as_dict(coding).get("code"))}


def _telematik_id(resource: Mapping[str, Any]) -> str | None:
    for identifier in as_list(resource.get("identifier")):
        identifier = as_dict(identifier)
        if identifier.get("system") == TELEMATIK_ID and _text(identifier.get("value")):
            return str(identifier["value"])
    return None


def _city(location: Mapping[str, Any]) -> str | None:
    return _text(as_dict(location.get("address")).get("city"))


def _city_of_organisation(organisation: Mapping[str, Any]) -> str | None:
    return next(
        (
            c
            for c in (_text(as_dict(a).get("city")) for a in as_list(organisation.get("address")))
            if c
        ),
        None,
    )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
