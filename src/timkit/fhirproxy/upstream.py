"""Calls from the FHIR-Proxy to the FHIR-Directory behind it (pooled HTTP, JSON bodies).

Two ways in. :func:`relay` forwards a request as raw bytes for the pass-through paths
(``/search`` reads), where the proxy must add as little as possible. :func:`fhir`,
:func:`fhir_json` and :func:`read` serve the rule-checking paths (``/owner``, provider FHIR).

Every call carries the directory's bearer token (``ctx.upstream_token``). A failed call
raises :class:`UpstreamError` with a generic message (the cause is logged here, never sent
to a client).

The directory builds ``fullUrl``, ``link.url`` and ``Location`` from the Host it is called
with, which is the upstream URL. :func:`rebase` swaps that prefix for the public base plus the
proxy path. This requires the directory to run without a ``base_url`` of its own, which is how
``timkit up`` runs it; otherwise links keep the directory's configured base.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from yarl import URL

from timkit.core.errors import TemporaryUpstreamError, UpstreamError
from timkit.core.fhir import authorization
from timkit.fhirproxy.context import FhirProxyContext

log = logging.getLogger(__name__)
UNREACHABLE = "the FHIR-Proxy could not reach the FHIR-Directory"
FAILED = "the FHIR-Proxy's request to the FHIR-Directory failed"
FHIR_JSON = "application/fhir+json"
RELAYED_HEADERS = ("ETag", "Last-Modified", "Location")
"""Response headers of the directory passed on to the client (after :func:`rebase`)."""


async def fhir(
    ctx: FhirProxyContext,
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
    send_headers = {"Accept": FHIR_JSON, **(headers or {}), **authorization(ctx.upstream_token)}
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
        log.warning("FHIR-Directory unreachable (%s %s): %r", method, path, e)
        raise TemporaryUpstreamError(UNREACHABLE) from e
    except Exception as e:
        log.warning("FHIR-Directory request failed (%s %s): %r", method, path, e)
        raise UpstreamError(FAILED) from e


async def relay(ctx: FhirProxyContext, path_qs: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path_qs`` (path plus already-encoded query) from the directory, unparsed.

    Returns status, the :data:`RELAYED_HEADERS` present, and the raw body. The URL is not
    re-quoted, so the client's encoding of the query reaches the directory unchanged. The
    caller vouches for ``path_qs``: its path is built from checked segments (a directory type
    and a FHIR id, which need no encoding) and its query is the client's raw query string as
    :func:`timkit.core.request_target.parse_target` accepted it.
    """
    url = URL(ctx.config.upstream + path_qs, encoded=True)
    headers = {"Accept": FHIR_JSON, **authorization(ctx.upstream_token)}
    try:
        async with ctx.http.get(url, headers=headers) as response:
            raw = await response.read()
            kept = {h: response.headers[h] for h in RELAYED_HEADERS if h in response.headers}
            return response.status, kept, raw
    except OSError as e:
        log.warning("FHIR-Directory unreachable (GET %s): %r", path_qs, e)
        raise TemporaryUpstreamError(UNREACHABLE) from e
    except Exception as e:
        log.warning("FHIR-Directory request failed (GET %s): %r", path_qs, e)
        raise UpstreamError(FAILED) from e


def rebase(ctx: FhirProxyContext, raw: bytes, prefix: str) -> bytes:
    """``raw`` with every ``<upstream>/`` replaced by ``<public base><prefix>/``."""
    upstream = ctx.config.upstream.encode() + b"/"
    if upstream not in raw:
        return raw
    return raw.replace(upstream, (ctx.base + prefix).encode() + b"/")


def rebase_headers(
    ctx: FhirProxyContext, headers: Mapping[str, str], prefix: str
) -> dict[str, str]:
    """The :data:`RELAYED_HEADERS` of ``headers``, ``Location`` rebased like :func:`rebase`."""
    kept = {h: headers[h] for h in RELAYED_HEADERS if h in headers}
    if "Location" in kept and kept["Location"].startswith(ctx.config.upstream + "/"):
        tail = kept["Location"][len(ctx.config.upstream) :]
        kept["Location"] = ctx.base + prefix + tail
    return kept


async def fhir_json(
    ctx: FhirProxyContext,
    path: str,
    params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """GET ``path`` from the directory and return the JSON body; 502 unless 200."""
    status, _, raw = await fhir(ctx, "GET", path, params=params)
    if status != 200:
        raise UpstreamError(f"FHIR-Directory answered {status} to GET {path}")
    result: dict[str, Any] = orjson.loads(raw)
    return result


async def read(ctx: FhirProxyContext, reference: str) -> tuple[dict[str, Any], str] | None:
    """The resource at ``reference`` (``Type/id``) and its ETag; ``None`` if absent or deleted.

    Raises:
        UpstreamError: the directory failed otherwise (502).
    """
    status, headers, raw = await fhir(ctx, "GET", "/" + reference)
    if status in (404, 410):
        return None
    if status != 200:
        raise UpstreamError(f"FHIR-Directory answered {status} to GET /{reference}")
    resource: dict[str, Any] = orjson.loads(raw)
    return resource, headers.get("ETag", "")


async def search_all(
    ctx: FhirProxyContext, resource_type: str, params: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The matching resources (first page, at most 100) of a search on the directory."""
    bundle = await fhir_json(ctx, "/" + resource_type, [*params, ("_count", "100")])
    return _matches(bundle)


async def search_every(
    ctx: FhirProxyContext,
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    page_size: int = 1000,
    max_pages: int = 100,
) -> list[dict[str, Any]]:
    """Every matching resource of a search on the directory, following ``next`` links.

    Raises:
        UpstreamError: the directory failed, or there are more than ``max_pages`` pages
            (an incomplete answer is never returned as a complete one).
    """
    bundle = await fhir_json(ctx, "/" + resource_type, [*params, ("_count", str(page_size))])
    found = _matches(bundle)
    for _ in range(max_pages - 1):
        url = _next_url(bundle)
        if url is None:
            return found
        if not url.startswith(ctx.config.upstream + "/"):
            raise UpstreamError(f"FHIR-Directory sent a next link off its base: {url}")
        status, _, raw = await relay(ctx, url[len(ctx.config.upstream) :])
        if status != 200:
            raise UpstreamError(f"FHIR-Directory answered {status} to a next page of {url}")
        bundle = orjson.loads(raw)
        found += _matches(bundle)
    if _next_url(bundle) is None:
        return found
    raise UpstreamError(f"{resource_type} search has more than {max_pages} pages")


def _matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e.get("search", {}).get("mode", "match") == "match"
    ]


def _next_url(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) else None
    return None
