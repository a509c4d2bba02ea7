"""FHIR calls of the VZD module: one request function, errors from ``OperationOutcome`` s.

The FHIR-Proxy answers ``/search`` and ``/owner`` errors as FHIR ``OperationOutcome`` s (and
token errors of the Auth-Service as OAuth error JSON); its diagnostics end in
``" - see <requirement>"`` when a rule refused the request. :func:`fhir_call` turns every
non-2xx answer into a :class:`~timkit.core.errors.TimkitError` with the status, the issue
code, the diagnostics and the requirement id taken apart again, so an actor sees which rule
refused what (ML-123611: a foreign PractitionerRole is a 403 naming ML-123874).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from timkit.client.mxid import matrix_uri, mxid_from_uri, parse_mxid
from timkit.core.errors import Codes, TimkitError

FHIR_JSON = "application/fhir+json"
_REQUIREMENT = re.compile(
    r"\A(?P<message>.*) - see (?P<requirement>(?:ML|AF|A)[-_][\w.-]+)\Z", re.S
)
MAX_MESSAGE = 500
"""Longest server message carried into an error (the rest is cut off)."""

Params = Sequence[tuple[str, str]]


def split_requirement(text: str) -> tuple[str, str | None]:
    """``"<message> - see ML-1"`` → ``("<message>", "ML-1")``; other text → ``(text, None)``."""
    found = _REQUIREMENT.match(text)
    if found is None:
        return text, None
    return found["message"], found["requirement"]


def error_of(response: httpx.Response, what: str) -> TimkitError:
    """The error a non-2xx FHIR or OAuth answer stands for (status kept).

    The message is the first ``OperationOutcome`` issue's diagnostics, or the OAuth
    ``error_description``, or ``what`` and the status; its requirement id is split off.
    """
    body = json_object(response)
    code: str = Codes.UNKNOWN
    text = ""
    issues = body.get("issue") if body.get("resourceType") == "OperationOutcome" else None
    if isinstance(issues, list) and issues and isinstance(issues[0], dict):
        issue = issues[0]
        code = str(issue.get("code") or Codes.UNKNOWN)
        text = str(issue.get("diagnostics") or "")
    elif isinstance(body.get("error"), str):
        code = str(body["error"])
        text = str(body.get("error_description") or "")
    if not text:
        text = f"{what} answered {response.status_code}"
    message, requirement = split_requirement(text[:MAX_MESSAGE])
    return TimkitError(response.status_code, code, message, requirement=requirement)


async def fhir_call(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    token: str,
    *,
    params: Params | None = None,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``method url`` with ``Authorization: Bearer token``; the answer's JSON object.

    ``body`` is sent as ``application/fhir+json``. A ``204`` (or empty body) gives ``{}``.

    Raises:
        TimkitError: the FHIR-Proxy's status and diagnostics (:func:`error_of`); 502
            ``TIMKIT_UPSTREAM`` when it cannot be reached or answers 2xx without a JSON
            object.
    """
    sent = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON, **(headers or {})}
    content: bytes | None = None
    if body is not None:
        sent["Content-Type"] = FHIR_JSON
        content = json.dumps(body, ensure_ascii=False).encode()
    try:
        response = await http.request(
            method, url, params=list(params or ()), content=content, headers=sent
        )
    except httpx.HTTPError as e:
        raise TimkitError(
            502, Codes.UPSTREAM, f"the VZD-FHIR-Directory cannot be reached: {type(e).__name__}"
        ) from e
    if not response.is_success:
        raise error_of(response, f"{method} {httpx.URL(url).path}")
    if response.status_code == 204 or not response.content:
        return {}
    found = json_object(response)
    if not found:
        raise TimkitError(
            502, Codes.NOT_JSON, f"{method} {httpx.URL(url).path} did not answer with FHIR JSON"
        )
    return found


def mxid_uri(mxid: str) -> str:
    """The Endpoint address of ``mxid`` (``@alice:example.org`` or a Matrix URI) in the form
    Endpoints carry: ``matrix:u/alice:example.org`` (:func:`timkit.client.mxid.matrix_uri`).

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` for text that is no Matrix user id.
    """
    text = mxid.strip()
    if text.lower().startswith("matrix:"):
        return matrix_uri(mxid_from_uri(text, "mxid"))
    return matrix_uri(parse_mxid(text))


def user_id(address: str) -> str | None:
    """The user id an Endpoint ``address`` names (``matrix:u/…``), normalised by
    :func:`timkit.client.mxid.parse_mxid`; ``None`` for an address that is no MXID."""
    try:
        return mxid_from_uri(address, "address")
    except TimkitError:
        return None


def resources_of(bundle: Mapping[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The resources of ``resource_type`` (with an id) in ``bundle``'s entries, in order."""
    found = []
    for entry in as_list(bundle.get("entry")):
        resource = as_dict(as_dict(entry).get("resource"))
        if resource.get("resourceType") == resource_type and isinstance(resource.get("id"), str):
            found.append(resource)
    return found


def person_name(resource: Mapping[str, Any]) -> str | None:
    """The first ``HumanName`` of ``resource``: its ``text``, else prefix, given and family."""
    for name in as_list(resource.get("name")):
        name = as_dict(name)
        text = name.get("text")
        if isinstance(text, str) and text.strip():
            return text.strip()
        parts = [*as_list(name.get("prefix")), *as_list(name.get("given")), name.get("family")]
        joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
        if joined:
            return joined
    return None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for tolerant parsing)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one (for tolerant parsing)."""
    return value if isinstance(value, list) else []


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; empty when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
