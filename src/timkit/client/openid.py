"""Matrix OpenID tokens and their exchange at the VZD's ``/tim-authenticate`` (ML-123485).

The exchange is both the AF_10057 federation check right after login (a homeserver that is
not in the TI federation gets no search token: ML-123571, ML-129870) and the way to a
``search-accesstoken`` for ``/search`` (AF_10061, ML-123654).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from timkit.client.fhir_api import json_object
from timkit.client.matrix_api import MatrixApi, segment
from timkit.core.errors import Codes, TimkitError

OPENID_HEADER = "X-Matrix-OpenID-Token"
EXPIRY_MARGIN = 30.0
"""Seconds before a token's expiry at which it counts as expired (clock skew, latency)."""


@dataclass(frozen=True)
class OpenIdToken:
    """A Matrix OpenID token (``POST /user/{userId}/openid/request_token``).

    Attributes:
        access_token: the token a third party checks at the homeserver's userinfo endpoint.
        server_name: the homeserver that issued it.
        expires_at: ``time.time()`` after which it is no longer accepted.
    """

    access_token: str
    server_name: str
    expires_at: float


@dataclass(frozen=True)
class SearchToken:
    """A ``search-accesstoken`` of the VZD (``/tim-authenticate``).

    Attributes:
        access_token: bearer token for ``/search``.
        expires_at: ``time.time()`` after which the FHIR-Proxy refuses it.
    """

    access_token: str
    expires_at: float

    def fresh(self, now: float | None = None) -> bool:
        """Whether the token is still good for at least :data:`EXPIRY_MARGIN` seconds."""
        return (now if now is not None else time.time()) < self.expires_at - EXPIRY_MARGIN


async def request_openid_token(api: MatrixApi, user_id: str) -> OpenIdToken:
    """A fresh OpenID token of the logged-in ``user_id``.

    Raises:
        TimkitError: the homeserver refused (its status and ``errcode``) or answered
            without ``access_token``/``matrix_server_name``/``expires_in`` (502).
    """
    body = await api.call(
        "POST", f"/_matrix/client/v3/user/{segment(user_id)}/openid/request_token", json={}
    )
    token, server, expires = (
        body.get("access_token"),
        body.get("matrix_server_name"),
        body.get("expires_in"),
    )
    if not isinstance(token, str) or not isinstance(server, str) or not isinstance(expires, int):
        raise TimkitError(502, Codes.UPSTREAM, "the homeserver's OpenID token answer is incomplete")
    return OpenIdToken(token, server, time.time() + expires)


async def tim_authenticate(
    http: httpx.AsyncClient, directory_url: str, token: OpenIdToken
) -> SearchToken:
    """Exchange ``token`` at ``<directory_url>/tim-authenticate`` for a search-accesstoken.

    Raises:
        TimkitError: 401/403 with the FHIR-Proxy's reason and ``ML-129870`` when the VZD
            refuses the homeserver (not in the federation) or the token; 502 when the VZD
            cannot be reached or answers without a token.
    """
    try:
        response = await http.get(
            directory_url.rstrip("/") + "/tim-authenticate",
            params={"mxId": token.server_name},
            headers={OPENID_HEADER: token.access_token},
        )
    except httpx.HTTPError as e:
        raise TimkitError(
            502, Codes.UPSTREAM, f"the VZD-FHIR-Directory cannot be reached: {type(e).__name__}"
        ) from e
    body = json_object(response)
    if response.status_code in (401, 403):
        reason = body.get("error_description") or body.get("error") or "refused"
        raise TimkitError(
            response.status_code,
            Codes.FORBIDDEN,
            f"the VZD-FHIR-Directory refused {token.server_name}: {reason}",
            requirement="ML-129870",
        )
    access, expires = body.get("access_token"), body.get("expires_in")
    if response.status_code != 200 or not isinstance(access, str) or not isinstance(expires, int):
        raise TimkitError(
            502,
            Codes.UPSTREAM,
            f"/tim-authenticate answered {response.status_code} without a token",
        )
    return SearchToken(access, time.time() + expires)
