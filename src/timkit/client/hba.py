"""AF_10058: a practitioner (User-HBA) signs in with the HBA and publishes their MXID.

**Sign-in** (:func:`owner_login_hba`, Client.adoc "Auth Modul", HOWTO Authenticate §2.4,
ML-123873)::

    GET  <directory>/owner-authenticate[?idp=<issuer>]   (no Authorization)
         302 → <IDP>/auth?…&redirect_uri=<directory>/signin-gematik-idp-dienst&state=…
    GET  <IDP>/auth…                                     the IDP's card choice
    POST <IDP>/auth  (the chosen card's form)            302 → <directory>/signin-…?code&state
    GET  <directory>/signin-gematik-idp-dienst?code&state → owner-accesstoken

No redirect is followed blindly: the first must lead to an ``https`` IDP (the one asked for,
when ``idp`` is given) and name this directory's ``/signin-gematik-idp-dienst`` as its
redirect URI; the card form must post to the IDP's own origin; the IDP's redirect must lead
to exactly that redirect URI. The authorization code only ever goes to the directory the
caller named. (With the real IDP-Dienst the card choice is the gematik Authenticator's
challenge-response; the IDP stand-in's page is what this module drives.)

**Entry maintenance** (:class:`OwnerEntries`, HOWTO Owner): the own Practitioner is the one
with the token's TelematikID (``sub``); its PractitionerRole gets a TI-M Endpoint
(``connectionType`` ``tim``, ``payloadType`` ``tim-chat``, ``address``
``matrix:u/<localpart>:<domain>``) linked in ``endpoint`` (ML-123612). Only the own
PractitionerRole may carry it (ML-123611): the FHIR-Proxy refuses a foreign one (403,
ML-123874), which surfaces as that :class:`~timkit.core.errors.TimkitError`. Visibility is
the Endpoint's ``status`` (``active``/``off``); switching it off checks whether the MXID is
still active in the organisation directory (a HealthcareService's Endpoint) and then carries
the inconsistency hint Client.adoc "Sichtbarkeit" demands (:data:`INCONSISTENT_VISIBILITY`).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin

import httpx

from timkit.client.directory_search import hits_of, is_tim_endpoint
from timkit.client.fhir_api import (
    as_dict,
    as_list,
    error_of,
    fhir_call,
    json_object,
    mxid_uri,
    person_name,
    resources_of,
    user_id,
)
from timkit.client.matrix_api import segment
from timkit.core.errors import Codes, IssueType, TimkitError
from timkit.core.fhir import CONNECTION_TYPE, PAYLOAD_TYPE, TELEMATIK_ID

SIGNIN_PATH = "/signin-gematik-idp-dienst"
REQ_OWNER_LOGIN = "ML-123873"
REQ_PUBLISH = "ML-123612"
EXPIRY_MARGIN = 30.0
MAX_PAGE = 256 * 1024
INCONSISTENT_VISIBILITY = (
    "Ihre MXID {mxid} ist im Personenverzeichnis jetzt verborgen, im Organisationsverzeichnis"
    " aber weiterhin sichtbar eingetragen ({where}). Die hinterlegte Sichtbarkeit ist damit"
    " inkonsistent. Bitte wenden Sie sich an den Administrator Ihrer Organisation (Org-Admin),"
    " damit er die gewünschte Sichtbarkeit auch im Organisationsverzeichnis hinterlegt."
)
"""The hint (Client.adoc "Sichtbarkeit"): the actor must contact their organisation's admin."""


@dataclass(frozen=True)
class OwnerToken:
    """An ``owner-accesstoken`` of the FHIR-Proxy.

    Attributes:
        access_token: bearer token for ``/owner``.
        telematik_id: the owner's TelematikID (the token's ``sub``, read without
            verification: the FHIR-Proxy checks the token, the client only needs to know
            whose it is).
        expires_at: ``time.time()`` after which the FHIR-Proxy refuses it.
    """

    access_token: str
    telematik_id: str
    expires_at: float

    def fresh(self, now: float | None = None) -> bool:
        """Whether the token is still good for at least :data:`EXPIRY_MARGIN` seconds."""
        return (now if now is not None else time.time()) < self.expires_at - EXPIRY_MARGIN


@dataclass(frozen=True)
class PublishedEndpoint:
    """The result of :meth:`OwnerEntries.publish_mxid`.

    Attributes:
        mxid: the published Matrix user id (``@localpart:domain``).
        endpoint: ``Endpoint/<id>`` carrying it.
        role: ``PractitionerRole/<id>`` linking it.
        created: whether the Endpoint was created now (else an existing one was reused).
    """

    mxid: str
    endpoint: str
    role: str
    created: bool


@dataclass(frozen=True)
class VisibilityResult:
    """The result of :meth:`OwnerEntries.set_visibility`.

    Attributes:
        mxid: the Matrix user id.
        visible: the visibility now set (Endpoint ``status`` ``active`` or ``off``).
        endpoints: the own Endpoints carrying the MXID (``Endpoint/<id>``).
        hint: :data:`INCONSISTENT_VISIBILITY` filled in when the MXID was hidden here but is
            still active in the organisation directory; ``None`` otherwise.
    """

    mxid: str
    visible: bool
    endpoints: tuple[str, ...]
    hint: str | None


# --- sign-in -----------------------------------------------------------------------------------


async def owner_login_hba(
    http: httpx.AsyncClient, directory_url: str, card_id: str, *, idp: str | None = None
) -> OwnerToken:
    """Sign in at the FHIR-Proxy with the HBA ``card_id`` via the IDP (see module docstring).

    Args:
        http: the client (trusting the directory's and the IDP's TLS certificates); its
            redirect setting does not matter, every hop is made explicitly.
        directory_url: base URL of the FHIR-Proxy and Auth-Service.
        card_id: the card to choose at the IDP (the IDP stand-in's card id).
        idp: issuer of the IDP to use (``?idp=``) and the only origin the sign-in may be
            redirected to; ``None`` = the directory's default IDP, any ``https`` origin.

    Raises:
        TimkitError: the directory or IDP refused (their status, reason and requirement);
            502 ``TIMKIT_UPSTREAM`` naming ML-123873 for a redirect to an unexpected place
            or a page without the card form; 404 when the IDP offers no card ``card_id``.
    """
    base = directory_url.rstrip("/")
    signin = base + SIGNIN_PATH
    start = await _send(
        http, "GET", base + "/owner-authenticate", params={"idp": idp} if idp else None
    )
    authorize = _redirect(start, "/owner-authenticate")
    if httpx.URL(authorize).scheme != "https" or (idp and not _same_origin(authorize, idp)):
        raise _unexpected(f"/owner-authenticate redirected to {_origin_text(authorize)}")
    redirect_uri = _query(authorize).get("redirect_uri", "")
    if not _same_place(redirect_uri, signin):
        raise _unexpected(f"the sign-in names another redirect URI: {redirect_uri[:200]!r}")
    page = await _send(http, "GET", authorize)
    if page.status_code != 200:
        raise error_of(page, "the IDP")
    action, fields = _card_form(page.text[:MAX_PAGE], card_id)
    target = urljoin(authorize, action)
    if not _same_origin(target, authorize):
        raise _unexpected(f"the IDP's card form posts to {_origin_text(target)}")
    chosen = await _send(http, "POST", target, data=fields)
    back = _redirect(chosen, "the IDP")
    if not _same_place(back, signin):
        raise _unexpected(f"the IDP redirected to {_origin_text(back)}")
    issued = await _send(http, "GET", back)  # also an IDP refusal: the proxy names it
    if issued.status_code != 200:
        raise error_of(issued, SIGNIN_PATH)
    return _owner_token(issued)


async def _send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    params: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    try:
        return await http.request(method, url, params=params, data=data, follow_redirects=False)
    except httpx.HTTPError as e:
        raise TimkitError(
            502, Codes.UPSTREAM, f"{_origin_text(url)} cannot be reached: {type(e).__name__}"
        ) from e


def _redirect(response: httpx.Response, what: str) -> str:
    if response.status_code not in (302, 303):
        raise error_of(response, what)
    location = str(response.headers.get("Location", ""))
    try:
        absolute = httpx.URL(location).is_absolute_url
    except httpx.InvalidURL:
        absolute = False
    if not absolute:
        raise _unexpected(f"{what} redirected to a malformed, relative or missing location")
    return location


def _unexpected(message: str) -> TimkitError:
    return TimkitError(
        502, Codes.UPSTREAM, f"{message}; sign-in stopped", requirement=REQ_OWNER_LOGIN
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    default = {"https": 443, "http": 80}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), parsed.port or default


def _origin_text(url: str) -> str:
    try:
        scheme, host, port = _origin(url)
    except httpx.InvalidURL:
        return "(a malformed URL)"
    return f"{scheme}://{host}:{port}"


def _same_origin(a: str, b: str) -> bool:
    try:
        return _origin(a) == _origin(b)
    except httpx.InvalidURL:
        return False


def _same_place(url: str, expected: str) -> bool:
    """Same origin and path (the query may differ)."""
    try:
        return _same_origin(url, expected) and httpx.URL(url).path == httpx.URL(expected).path
    except httpx.InvalidURL:
        return False


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(httpx.URL(url).query.decode()).items()}


class _Forms(HTMLParser):
    """The forms of an HTML page: action and the hidden/submit inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._current: tuple[str, dict[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = (values.get("action", ""), {})
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and values.get("name"):
            self._current[1][values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _card_form(page: str, card_id: str) -> tuple[str, dict[str, str]]:
    """The action and fields of the IDP page's form choosing ``card_id``."""
    parser = _Forms()
    parser.feed(page)
    offered = [fields["card"] for _, fields in parser.forms if "card" in fields]
    if not offered:
        raise _unexpected("the IDP's page has no card choice")
    for action, fields in parser.forms:
        if fields.get("card") == card_id:
            return action, fields
    raise TimkitError(
        404,
        Codes.NOT_FOUND,
        f"the IDP offers no card {card_id!r} (offered: {', '.join(offered)[:300]})",
        requirement=REQ_OWNER_LOGIN,
    )


def _owner_token(response: httpx.Response) -> OwnerToken:
    body = json_object(response)
    access, expires = body.get("access_token"), body.get("expires_in")
    if not isinstance(access, str) or not isinstance(expires, int):
        raise TimkitError(502, Codes.UPSTREAM, f"{SIGNIN_PATH} answered without a token")
    return OwnerToken(access, _subject(access), time.time() + expires)


def _subject(token: str) -> str:
    """The ``sub`` of a JWT (payload decoded, not verified)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error) as e:
        raise TimkitError(502, Codes.UPSTREAM, "the owner-accesstoken is not a JWT") from e
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub:
        raise TimkitError(502, Codes.UPSTREAM, "the owner-accesstoken names no TelematikID")
    return sub


# --- entry maintenance ---------------------------------------------------------------------------


class OwnerEntries:
    """The own directory entries of one signed-in practitioner (``/owner``).

    Args:
        http: the client (trusting the directory's TLS certificate).
        directory_url: base URL of the FHIR-Proxy.
        token: the owner-accesstoken from :func:`owner_login_hba`.
    """

    def __init__(self, http: httpx.AsyncClient, directory_url: str, token: OwnerToken) -> None:
        self.http = http
        self.directory_url = directory_url.rstrip("/")
        self.token = token

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return await fhir_call(
            self.http,
            method,
            f"{self.directory_url}/owner/{path}",
            self.token.access_token,
            params=params,
            body=body,
            headers=headers,
        )

    async def practitioners(self) -> list[dict[str, Any]]:
        """The Practitioner entries with the token's TelematikID."""
        bundle = await self._call(
            "GET",
            "Practitioner",
            params=[("identifier", f"{TELEMATIK_ID}|{self.token.telematik_id}")],
        )
        return resources_of(bundle, "Practitioner")

    async def own_roles(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The own PractitionerRoles, and their Endpoints by ``Endpoint/<id>``.

        Raises:
            TimkitError: 404 naming ML-123612 when the VZD has no Practitioner or no
                PractitionerRole for the token's TelematikID.
        """
        practitioners = await self.practitioners()
        if not practitioners:
            raise TimkitError(
                404,
                IssueType.NOT_FOUND,
                f"the VZD has no Practitioner with TelematikID {self.token.telematik_id}",
                requirement=REQ_PUBLISH,
            )
        references = ",".join(f"Practitioner/{p['id']}" for p in practitioners)
        bundle = await self._call(
            "GET",
            "PractitionerRole",
            params=[("practitioner", references), ("_include", "PractitionerRole:endpoint")],
        )
        roles = resources_of(bundle, "PractitionerRole")
        if not roles:
            raise TimkitError(
                404,
                IssueType.NOT_FOUND,
                f"the VZD has no PractitionerRole for TelematikID {self.token.telematik_id}",
                requirement=REQ_PUBLISH,
            )
        endpoints = {f"Endpoint/{e['id']}": e for e in resources_of(bundle, "Endpoint")}
        return roles, endpoints

    async def publish_mxid(
        self, mxid: str, *, role_id: str | None = None, name: str | None = None
    ) -> PublishedEndpoint:
        """Publish ``mxid`` as an active TI-M Endpoint of the own PractitionerRole (ML-123612).

        An Endpoint of the role that already carries ``mxid`` is reused (and made active);
        otherwise one is created and linked. ``role_id`` picks a PractitionerRole explicitly;
        the FHIR-Proxy refuses one that is not the owner's (ML-123611), and the Endpoint
        created for it is deleted again.

        Args:
            mxid: ``@localpart:domain`` or ``matrix:u/localpart:domain``.
            role_id: the PractitionerRole's id; default the first own one.
            name: the Endpoint's name; default the practitioner's name.

        Raises:
            TimkitError: the FHIR-Proxy's refusal (status, diagnostics, requirement id), or
                404 when the VZD holds no own Practitioner/PractitionerRole.
        """
        address = mxid_uri(mxid)
        roles, endpoints = await self.own_roles()
        if role_id is None:
            role = roles[0]
        else:
            own = [r for r in roles if r["id"] == role_id]
            role = (
                own[0] if own else await self._call("GET", f"PractitionerRole/{segment(role_id)}")
            )
        linked = [str(as_dict(ref).get("reference", "")) for ref in as_list(role.get("endpoint"))]
        for reference in linked:
            endpoint = endpoints.get(reference)
            if endpoint is not None and _carries(endpoint, address):
                if endpoint.get("status") != "active":
                    await self._put({**endpoint, "status": "active"})
                return PublishedEndpoint(
                    _user(address), reference, f"PractitionerRole/{role['id']}", False
                )
        if name is None:
            practitioners = await self.practitioners()
            name = person_name(practitioners[0]) if practitioners else None
        created = await self._call("POST", "Endpoint", body=tim_endpoint(address, name))
        reference = f"Endpoint/{created['id']}"
        updated = {**role, "endpoint": [*as_list(role.get("endpoint")), {"reference": reference}]}
        try:
            await self._put(updated)
        except TimkitError:
            await self._call("DELETE", reference)
            raise
        return PublishedEndpoint(_user(address), reference, f"PractitionerRole/{role['id']}", True)

    async def set_visibility(self, mxid: str, visible: bool) -> VisibilityResult:
        """Switch the own Endpoints carrying ``mxid`` ``active`` (visible) or ``off``.

        Hiding checks the organisation directory: when a HealthcareService still has an
        active TI-M Endpoint with ``mxid``, the result carries the German hint
        :data:`INCONSISTENT_VISIBILITY` (Client.adoc "Sichtbarkeit").

        Raises:
            TimkitError: 404 naming ML-123612 when no own Endpoint carries ``mxid``; the
                FHIR-Proxy's refusal of the update.
        """
        address = mxid_uri(mxid)
        roles, endpoints = await self.own_roles()
        own = {
            str(as_dict(ref).get("reference", ""))
            for role in roles
            for ref in as_list(role.get("endpoint"))
        }
        carrying = {r: e for r, e in endpoints.items() if r in own and _carries(e, address)}
        if not carrying:
            raise TimkitError(
                404,
                IssueType.NOT_FOUND,
                f"{_user(address)} is not published on an own PractitionerRole",
                requirement=REQ_PUBLISH,
            )
        status = "active" if visible else "off"
        for endpoint in carrying.values():
            if endpoint.get("status") != status:
                await self._put({**endpoint, "status": status})
        hint = None if visible else await self._organisation_hint(address)
        return VisibilityResult(_user(address), visible, tuple(sorted(carrying)), hint)

    async def remove_mxid(self, mxid: str) -> tuple[str, ...]:
        """Unlink and delete the own Endpoints carrying ``mxid``; the deleted references."""
        address = mxid_uri(mxid)
        roles, endpoints = await self.own_roles()
        removed: set[str] = set()
        for role in roles:
            links = [as_dict(ref) for ref in as_list(role.get("endpoint"))]
            gone = [
                str(link.get("reference"))
                for link in links
                if _carries(endpoints.get(str(link.get("reference")), {}), address)
            ]
            if gone:
                kept = [link for link in links if str(link.get("reference")) not in gone]
                role = {**role, "endpoint": kept} if kept else _without(role, "endpoint")
                await self._put(role)
                removed.update(gone)
        for reference in sorted(removed):
            await self._call("DELETE", reference)
        return tuple(sorted(removed))

    async def _put(self, resource: dict[str, Any]) -> dict[str, Any]:
        reference = f"{resource['resourceType']}/{resource['id']}"
        version = as_dict(resource.get("meta")).get("versionId")
        headers = {"If-Match": f'W/"{version}"'} if isinstance(version, str) else None
        return await self._call("PUT", reference, body=resource, headers=headers)

    async def _organisation_hint(self, address: str) -> str | None:
        bundle = await self._call(
            "GET",
            "HealthcareService",
            params=[
                ("endpoint.address", address),
                ("endpoint.status", "active"),
                ("_include", "HealthcareService:organization"),
                ("_include", "HealthcareService:endpoint"),
            ],
        )
        wanted = _user(address)
        found = [hit for hit in hits_of(bundle, "organisation") if wanted in hit.mxids]
        if not found:
            return None
        where = ", ".join(sorted({hit.label() for hit in found}))
        return INCONSISTENT_VISIBILITY.format(mxid=_user(address), where=where)


def tim_endpoint(address: str, name: str | None) -> dict[str, Any]:
    """A new active TI-M Endpoint resource for ``address`` (``matrix:u/…``)."""
    endpoint: dict[str, Any] = {
        "resourceType": "Endpoint",
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPE, "code": "tim"},
        "payloadType": [{"coding": [{"system": PAYLOAD_TYPE, "code": "tim-chat"}]}],
        "address": address,
    }
    if name:
        endpoint["name"] = name
    return endpoint


def _carries(endpoint: dict[str, Any], address: str) -> bool:
    found = user_id(str(endpoint.get("address", "")))
    return is_tim_endpoint(endpoint) and found is not None and found == _user(address)


def _user(address: str) -> str:
    """The user id of an address made by :func:`~timkit.client.fhir_api.mxid_uri`."""
    return user_id(address) or address


def _without(resource: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != key}
