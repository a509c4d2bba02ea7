"""Find a homeserver from the domain an actor types (Matrix "Server Discovery", AF_10057).

``GET https://<domain>/.well-known/matrix/client`` names ``m.homeserver.base_url``; a 404
means the domain itself is the homeserver. The base URL must answer
``/_matrix/client/versions`` before it is used. ``hosts`` (the local federation) maps a domain
to the origin that serves it instead of DNS.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from timkit.core.errors import Codes, TimkitError

WELL_KNOWN = "/.well-known/matrix/client"


def origin_of(domain: str, hosts: Mapping[str, str]) -> str:
    """Where ``https://<domain>`` is reached: ``hosts[domain]`` or the domain itself."""
    return hosts.get(domain, f"https://{domain}").rstrip("/")


async def discover(http: httpx.AsyncClient, domain: str, hosts: Mapping[str, str]) -> str:
    """The client base URL (no trailing slash) of the homeserver of ``domain``.

    Raises:
        TimkitError: 502 when the domain cannot be reached, its well-known document is not
            valid JSON with a base URL, or the base URL does not answer as a Matrix homeserver.
    """
    origin = origin_of(domain, hosts)
    try:
        response = await http.get(origin + WELL_KNOWN)
    except httpx.HTTPError as e:
        raise _failed(domain, f"{origin} cannot be reached ({type(e).__name__})") from e
    if response.status_code == 404:
        base_url = origin
    elif response.status_code == 200:
        base_url = _base_url(domain, response)
    else:
        raise _failed(domain, f"{WELL_KNOWN} answered {response.status_code}")
    await _check_versions(http, domain, base_url)
    return base_url


def _base_url(domain: str, response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError as e:
        raise _failed(domain, f"{WELL_KNOWN} is not JSON") from e
    homeserver = document.get("m.homeserver") if isinstance(document, dict) else None
    base_url = homeserver.get("base_url") if isinstance(homeserver, dict) else None
    if not isinstance(base_url, str) or not base_url.startswith("https://"):
        raise _failed(domain, f"{WELL_KNOWN} names no https m.homeserver.base_url")
    return base_url.rstrip("/")


async def _check_versions(http: httpx.AsyncClient, domain: str, base_url: str) -> None:
    try:
        response = await http.get(base_url + "/_matrix/client/versions")
        versions = response.json().get("versions") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError) as e:
        raise _failed(domain, f"{base_url} is not a Matrix homeserver ({type(e).__name__})") from e
    if not isinstance(versions, list) or not versions:
        raise _failed(domain, f"{base_url} is not a Matrix homeserver (no versions)")


def _failed(domain: str, reason: str) -> TimkitError:
    return TimkitError(502, Codes.UPSTREAM, f"Anmeldung an {domain} nicht möglich: {reason}")
