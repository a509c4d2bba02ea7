"""Calls from the FHIR-Proxy to the FHIR-Directory behind it (pooled HTTP, JSON bodies)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from timkit.core.errors import TemporaryUpstreamError, UpstreamError
from timkit.directory.fhirproxy.context import ProxyContext

FHIR_JSON = "application/fhir+json"


async def fhir(
    ctx: ProxyContext,
    method: str,
    path: str,
    *,
    params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send one request to the FHIR-Directory; return status, headers and raw body.

    ``path`` starts with ``/`` and is relative to the directory's base. Errors of the
    directory (4xx/5xx with an OperationOutcome) are returned, not raised; only an
    unreachable directory raises :class:`UpstreamError` (502).
    """
    send_headers = {"Accept": FHIR_JSON, **(headers or {})}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        send_headers.setdefault("Content-Type", FHIR_JSON)
    url = ctx.config.upstream + path
    try:
        async with ctx.http.request(
            method, url, params=params, data=data, headers=send_headers
        ) as response:
            raw = await response.read()
            return response.status, dict(response.headers), raw
    except OSError as e:
        raise TemporaryUpstreamError(f"FHIR-Directory unreachable: {e}") from e
    except Exception as e:
        raise UpstreamError(f"FHIR-Directory request failed: {e}") from e


async def fhir_json(
    ctx: ProxyContext,
    path: str,
    params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """GET ``path`` from the directory and return the JSON body; 502 unless 200."""
    status, _, raw = await fhir(ctx, "GET", path, params=params)
    if status != 200:
        raise UpstreamError(f"FHIR-Directory answered {status} to GET {path}")
    result: dict[str, Any] = orjson.loads(raw)
    return result
