"""Authenticated JSON calls to the Matrix Client-Server API through the Messenger-Proxy.

:class:`MatrixApi` is the one place the SDK talks HTTP to the homeserver for what matrix-nio
does not cover (login with the AF_10057 client headers, OpenID tokens, cross-signing, key
backup, account data). Every non-2xx answer becomes a :class:`TimkitError` carrying the
server's ``errcode`` and status, so callers never parse error bodies themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from timkit.core.errors import Codes, TimkitError
from timkit.sdk.errors import raise_for_matrix_error


def segment(value: str) -> str:
    """``value`` percent-encoded as one path segment (``@u:d`` → ``%40u%3Ad``)."""
    return quote(value, safe="")


class MatrixApi:
    """JSON requests against one homeserver base URL, with or without an access token.

    Args:
        http: the client to send with (it trusts the service's TLS certificate).
        base_url: the homeserver's client base URL as discovered (no trailing slash).
        access_token: the session's token; ``None`` before login.
    """

    def __init__(self, http: httpx.AsyncClient, base_url: str, access_token: str | None = None):
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The Authorization header (when logged in) plus ``extra``."""
        headers = dict(extra or {})
        if self.access_token is not None:
            headers["Authorization"] = f"Bearer {self.access_token}"
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send ``method path`` (``path`` already percent-encoded) and return the JSON object.

        Raises:
            TimkitError: as :meth:`call_json`, and 502 ``M_NOT_JSON`` when the answer is not
                a JSON object.
        """
        body = await self.call_json(
            method, path, json=json, params=params, headers=headers, timeout=timeout
        )
        if not isinstance(body, dict):
            raise TimkitError(
                502, Codes.NOT_JSON, f"{method} {path} did not answer with a JSON object"
            )
        return body

    async def call_json(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send ``method path`` and return whatever JSON value the server answered.

        Raises:
            TimkitError: the server answered non-2xx (its ``errcode`` and status), the
                answer is not JSON (502 ``M_NOT_JSON``), or the server could not be reached
                (502 ``TIMKIT_UPSTREAM``).
        """
        try:
            response = await self.http.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers=self.headers(headers),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as e:
            raise TimkitError(
                502, Codes.UPSTREAM, f"{self.base_url} cannot be reached: {type(e).__name__}"
            ) from e
        raise_for_matrix_error(response)
        try:
            return response.json()
        except ValueError as e:
            raise TimkitError(502, Codes.NOT_JSON, f"{method} {path} did not answer JSON") from e
