"""The FHIR-Directory's interactions: CRUD, history, search and Bundles (FHIR R4 RESTful API).

Handlers take parsed input and return plain results; :mod:`timkit.directory.api` turns HTTP
into calls and results into responses. Every write validates first (:func:`validate`) and runs
in one write transaction, so an error leaves nothing half-written. Errors are
:class:`TimkitError` with a FHIR ``IssueType`` code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from timkit.core.db import Cursor
from timkit.core.errors import IssueType, TimkitError
from timkit.directory.query import SearchQuery, parse_search
from timkit.directory.storage.search import SearchResult, run_search
from timkit.directory.storage.store import Store, Stored
from timkit.directory.validation import canonical_type, validate

REQ = "ML-123880"


@dataclass(frozen=True)
class Outcome:
    """Result of a write: the stored version and the HTTP status (201 created / 200)."""

    stored: Stored
    status: int


def etag(stored: Stored) -> str:
    """The weak ETag of a version: ``W/"<versionId>"``."""
    return f'W/"{stored.version}"'


def parse_etag(value: str) -> int:
    """Version number from an ``If-Match`` value (``W/"3"`` or ``"3"``); else a 400."""
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise TimkitError(400, IssueType.INVALID, f"If-Match {value!r} is not a version ETag")
    return int(text)


def _new_id() -> str:
    return str(uuid.uuid4())


class Directory:
    """The FHIR-Directory on a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # -- reads ---------------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> Stored:
        """Current version; 404 if unknown, 410 if deleted."""
        resource_type = canonical_type(resource_type)
        with self.db.read() as cur:
            stored = self.store.current(cur, resource_type, resource_id)
        return _live(stored, resource_type, resource_id)

    def vread(self, resource_type: str, resource_id: str, version: str) -> Stored:
        """One version; 404 if unknown, 410 if that version is a delete."""
        resource_type = canonical_type(resource_type)
        if not version.isdigit():
            raise _not_found(resource_type, f"{resource_id}/_history/{version}")
        with self.db.read() as cur:
            stored = self.store.version(cur, resource_type, resource_id, int(version))
        return _live(stored, resource_type, f"{resource_id}/_history/{version}")

    def history(self, resource_type: str, resource_id: str) -> list[Stored]:
        """All versions, newest first; 404 if the resource never existed."""
        resource_type = canonical_type(resource_type)
        with self.db.read() as cur:
            versions = self.store.history(cur, resource_type, resource_id)
        if not versions:
            raise _not_found(resource_type, resource_id)
        return versions

    def search(
        self, resource_type: str, pairs: list[tuple[str, str]], *, strict: bool = False
    ) -> tuple[SearchQuery, SearchResult]:
        """Parse and run a search; unknown parameters are ignored unless ``strict``."""
        query = parse_search(canonical_type(resource_type), pairs, strict=strict)
        with self.db.read() as cur:
            return query, run_search(self.store, cur, query)

    # -- writes --------------------------------------------------------------------------

    def create(
        self, resource_type: str, body: dict[str, Any], *, if_none_exist: str | None = None
    ) -> Outcome:
        """Create with a server-assigned id; ``If-None-Exist`` makes it conditional."""
        resource = validate(body, expected_type=canonical_type(resource_type))
        with self.db.write() as tx:
            return self._create(tx, resource, if_none_exist)

    def update(
        self,
        resource_type: str,
        resource_id: str,
        body: dict[str, Any],
        *,
        if_match: str | None = None,
    ) -> Outcome:
        """Update (or create with this id); ``If-Match`` guards against lost updates (412)."""
        resource = validate(body, expected_type=canonical_type(resource_type))
        with self.db.write() as tx:
            return self._update(tx, resource, resource_id, if_match)

    def delete(self, resource_type: str, resource_id: str) -> None:
        """Delete (tombstone version); deleting what is absent or deleted is a no-op."""
        resource_type = canonical_type(resource_type)
        with self.db.write() as tx:
            self.store.delete(tx, resource_type, resource_id)

    def _create(self, tx: Cursor, resource: dict[str, Any], if_none_exist: str | None) -> Outcome:
        if if_none_exist is not None:
            existing = self._conditional_match(tx, resource["resourceType"], if_none_exist)
            if existing is not None:
                return Outcome(existing, 200)
        resource["id"] = _new_id()
        return Outcome(self.store.save(tx, resource, method="POST"), 201)

    def _update(
        self, tx: Cursor, resource: dict[str, Any], resource_id: str, if_match: str | None
    ) -> Outcome:
        resource_type = resource["resourceType"]
        if resource.get("id") != resource_id:
            raise TimkitError(
                400,
                IssueType.INVALID,
                f"{resource_type}.id {resource.get('id')!r} does not match the URL id"
                f" {resource_id!r}",
                extra={"expression": [f"{resource_type}.id"]},
            )
        current = self.store.current(tx, resource_type, resource_id)
        if if_match is not None:
            wanted = parse_etag(if_match)
            have = current.version if current and not current.deleted else None
            if have != wanted:
                raise TimkitError(
                    412,
                    IssueType.CONFLICT,
                    f"{resource_type}/{resource_id} is at version {have}, If-Match wanted {wanted}",
                )
        stored = self.store.save(tx, resource, method="PUT")
        created = current is None or current.deleted
        return Outcome(stored, 201 if created else 200)

    def _conditional_match(self, tx: Cursor, resource_type: str, criteria: str) -> Stored | None:
        pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
        query = parse_search(resource_type, [*pairs, ("_count", "2")], strict=True)
        result = run_search(self.store, tx, query)
        if len(result.matches) > 1:
            raise TimkitError(
                412,
                IssueType.DUPLICATE,
                f"If-None-Exist {criteria!r} matches more than one {resource_type}",
            )
        return result.matches[0] if result.matches else None

    # -- bundles -------------------------------------------------------------------------

    def bundle(self, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        """Process a ``batch`` or ``transaction`` Bundle; return the response Bundle."""
        if body.get("resourceType") != "Bundle" or body.get("type") not in (
            "batch",
            "transaction",
        ):
            raise TimkitError(
                400,
                IssueType.INVALID,
                "POST to the base URL takes a Bundle of type batch or transaction",
                extra={"expression": ["Bundle.type"]},
            )
        entries = body.get("entry") or []
        if not isinstance(entries, list):
            raise TimkitError(400, IssueType.STRUCTURE, "Bundle.entry must be a list")
        if body["type"] == "transaction":
            responses = self._transaction(entries, base_url)
        else:
            responses = [self._batch_entry(i, e, base_url) for i, e in enumerate(entries)]
        return {
            "resourceType": "Bundle",
            "id": _new_id(),
            "type": f"{body['type']}-response",
            "entry": responses,
        }

    def _transaction(self, entries: list[Any], base_url: str) -> list[dict[str, Any]]:
        """All entries in one write transaction; the first failure undoes everything."""
        plans = [_entry_plan(i, e) for i, e in enumerate(entries)]
        ids = {
            p.full_url: f"{p.resource_type}/{_new_id()}"
            for p in plans
            if p.method == "POST" and p.full_url
        }
        ids.update(
            (p.full_url, f"{p.resource_type}/{p.url.split('?')[0].strip('/').split('/')[1]}")
            for p in plans
            if p.method == "PUT" and p.full_url and p.full_url.startswith("urn:uuid:")
        )
        prepared = []
        for plan in plans:
            resource = plan.resource
            if resource is not None:
                try:
                    resource = validate(resource, expected_type=plan.resource_type)
                except TimkitError as e:
                    raise _in_entry(plan.index, e) from e
            prepared.append((plan, resource))
        with self.db.write() as tx:
            # A conditional create that matches makes its fullUrl denote the existing resource.
            existing: dict[int, Stored] = {}
            for plan, _ in prepared:
                if plan.method != "POST" or plan.if_none_exist is None or plan.full_url not in ids:
                    continue
                try:
                    match = self._conditional_match(tx, plan.resource_type, plan.if_none_exist)
                except TimkitError as e:
                    raise _in_entry(plan.index, e) from e
                if match is not None:
                    existing[plan.index] = match
                    ids[str(plan.full_url)] = f"{match.type}/{match.id}"
            responses = []
            for plan, resource in prepared:
                if plan.index in existing:
                    responses.append(_response(existing[plan.index], 200, base_url))
                    continue
                if resource is not None:
                    resource = _rewrite_references(resource, ids)
                try:
                    responses.append(self._apply(tx, plan, resource, ids, base_url))
                except TimkitError as e:
                    raise _in_entry(plan.index, e) from e
            return responses

    def _batch_entry(self, index: int, entry: Any, base_url: str) -> dict[str, Any]:
        """One independent batch entry; failures become that entry's OperationOutcome."""
        try:
            plan = _entry_plan(index, entry)
            resource = plan.resource
            if resource is not None:
                resource = validate(resource, expected_type=plan.resource_type)
            if plan.method == "GET":
                return self._batch_get(plan, base_url)
            with self.db.write() as tx:
                return self._apply(tx, plan, resource, {}, base_url)
        except TimkitError as e:
            return {
                "response": {
                    "status": f"{e.status}",
                    "outcome": _in_entry(index, e).to_operation_outcome(),
                }
            }

    def _batch_get(self, plan: _EntryPlan, base_url: str) -> dict[str, Any]:
        path, _, query = plan.url.partition("?")
        parts = path.strip("/").split("/")
        if len(parts) == 1:
            search_query, result = self.search(parts[0], parse_qsl(query))
            return {
                "resource": searchset(search_query, result, base_url),
                "response": {"status": "200"},
            }
        stored = self.read(parts[0], parts[1])
        return _response(stored, 200, base_url)

    def _apply(
        self,
        tx: Cursor,
        plan: _EntryPlan,
        resource: dict[str, Any] | None,
        ids: dict[str, str],
        base_url: str,
    ) -> dict[str, Any]:
        if plan.method == "POST" and resource is not None:
            if plan.full_url in ids:
                resource["id"] = ids[plan.full_url].split("/", 1)[1]
                outcome = Outcome(self.store.save(tx, resource, method="POST"), 201)
            else:
                outcome = self._create(tx, resource, plan.if_none_exist)
            return _response(outcome.stored, outcome.status, base_url)
        if plan.method == "PUT" and resource is not None:
            resource_id = plan.url.split("?")[0].strip("/").split("/")[1]
            outcome = self._update(tx, resource, resource_id, plan.if_match)
            return _response(outcome.stored, outcome.status, base_url)
        if plan.method == "DELETE":
            self.store.delete(tx, plan.resource_type, plan.url.strip("/").split("/")[1])
            return {"response": {"status": "204 No Content"}}
        raise TimkitError(
            400,
            IssueType.NOT_SUPPORTED,
            f"{plan.method} is not supported in a transaction",
            extra={"expression": [f"Bundle.entry[{plan.index}].request.method"]},
        )


@dataclass(frozen=True)
class _EntryPlan:
    index: int
    method: str
    url: str
    resource_type: str
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None


def _entry_plan(index: int, entry: Any) -> _EntryPlan:
    where = f"Bundle.entry[{index}]"
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        raise TimkitError(
            400,
            IssueType.REQUIRED,
            f"{where}.request with method and url is required",
            extra={"expression": [f"{where}.request"]},
        )
    method = str(request.get("method", "")).upper()
    url = request["url"]
    if method not in ("GET", "POST", "PUT", "DELETE"):
        raise TimkitError(
            400,
            IssueType.NOT_SUPPORTED,
            f"{where}.request.method {method!r} is not supported",
            extra={"expression": [f"{where}.request.method"]},
        )
    parts = url.split("?")[0].strip("/").split("/")
    try:
        resource_type = canonical_type(parts[0])
    except TimkitError as e:
        raise TimkitError(
            e.status,
            e.errcode,
            f"{where}.request.url: {e.message}",
            requirement=e.requirement,
            extra={"expression": [f"{where}.request.url"]},
        ) from e
    if method in ("PUT", "DELETE") and len(parts) != 2:
        raise TimkitError(
            400,
            IssueType.INVALID,
            f"{where}.request.url {url!r} must be Type/id for {method}",
            extra={"expression": [f"{where}.request.url"]},
        )
    resource = entry.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise TimkitError(
            400,
            IssueType.REQUIRED,
            f"{where}.resource is required for {method}",
            extra={"expression": [f"{where}.resource"]},
        )
    return _EntryPlan(
        index=index,
        method=method,
        url=url,
        resource_type=resource_type,
        resource=resource if method in ("POST", "PUT") else None,
        full_url=entry.get("fullUrl"),
        if_none_exist=request.get("ifNoneExist"),
        if_match=request.get("ifMatch"),
    )


def _rewrite_references(resource: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """Replace ``urn:uuid:`` references to entries of the same transaction by ``Type/id``."""
    if not ids:
        return resource

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (ids.get(v, v) if k == "reference" and isinstance(v, str) else walk(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    rewritten: dict[str, Any] = walk(resource)
    return rewritten


def _in_entry(index: int, error: TimkitError) -> TimkitError:
    """The same error, saying which Bundle entry caused it."""
    expression = [
        e if e.startswith("Bundle.") else f"Bundle.entry[{index}].resource.{e.split('.', 1)[-1]}"
        for e in error.extra.get("expression", [])
    ]
    message = (
        error.message
        if error.message.startswith("Bundle.")
        else (f"Bundle.entry[{index}]: {error.message}")
    )
    return TimkitError(
        error.status,
        error.errcode,
        message,
        requirement=error.requirement,
        extra={**error.extra, "expression": expression} if expression else error.extra,
    )


def _response(stored: Stored, status: int, base_url: str) -> dict[str, Any]:
    reason = {200: "200 OK", 201: "201 Created"}[status]
    return {
        "fullUrl": f"{base_url}/{stored.type}/{stored.id}",
        "resource": stored.resource(),
        "response": {
            "status": reason,
            "location": f"{stored.type}/{stored.id}/_history/{stored.version}",
            "etag": etag(stored),
            "lastModified": stored.last_updated,
        },
    }


def _live(stored: Stored | None, resource_type: str, what: str) -> Stored:
    if stored is None:
        raise _not_found(resource_type, what)
    if stored.deleted:
        raise TimkitError(410, IssueType.DELETED, f"{resource_type}/{what} has been deleted")
    return stored


def _not_found(resource_type: str, what: str) -> TimkitError:
    return TimkitError(404, IssueType.NOT_FOUND, f"{resource_type}/{what} is not known")


def history_bundle(versions: Sequence[Stored], base_url: str) -> dict[str, Any]:
    """A ``history`` Bundle, newest version first."""
    entries = []
    for stored in versions:
        entry: dict[str, Any] = {"fullUrl": f"{base_url}/{stored.type}/{stored.id}"}
        if stored.deleted:
            entry["request"] = {"method": "DELETE", "url": f"{stored.type}/{stored.id}"}
            entry["response"] = {"status": "410 Gone", "lastModified": stored.last_updated}
        else:
            method = "POST" if stored.version == 1 else "PUT"
            entry["resource"] = stored.resource()
            entry["request"] = {"method": method, "url": f"{stored.type}/{stored.id}"}
            entry["response"] = {
                "status": "201 Created" if method == "POST" else "200 OK",
                "etag": etag(stored),
                "lastModified": stored.last_updated,
            }
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": _new_id(),
        "type": "history",
        "total": len(entries),
        "entry": entries,
    }


def searchset(
    query: SearchQuery,
    result: SearchResult,
    base_url: str,
    *,
    encode: Callable[[list[tuple[str, str]]], str] = urlencode,
    raw: bool = False,
) -> dict[str, Any]:
    """The ``searchset`` Bundle for one page, with ``self``/``next`` links.

    With ``raw``, each entry's resource is the stored JSON as an ``orjson.Fragment`` (the
    HTTP edge serialises it without parsing it first); otherwise a parsed dict.
    """
    url = f"{base_url}/{query.resource_type}"
    params = list(query.used)
    page = params
    if query.cursor is not None:
        page = [p for p in params if p[0] != "_count"]
        page += [("_count", str(query.count)), ("_cursor", query.cursor.encode())]
    links = [{"relation": "self", "url": f"{url}?{encode(page)}"}]
    if result.next_cursor is not None:
        next_params = [p for p in params if p[0] != "_count"]
        next_params += [("_count", str(query.count)), ("_cursor", result.next_cursor.encode())]
        links.append({"relation": "next", "url": f"{url}?{encode(next_params)}"})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": _new_id(), "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    entries = [_search_entry(s, "match", base_url, raw=raw) for s in result.matches]
    entries += [_search_entry(s, "include", base_url, raw=raw) for s in result.included]
    if entries:
        bundle["entry"] = entries
    return bundle


def _search_entry(stored: Stored, mode: str, base_url: str, *, raw: bool) -> dict[str, Any]:
    return {
        "fullUrl": f"{base_url}/{stored.type}/{stored.id}",
        "resource": orjson.Fragment(stored.body) if raw else stored.resource(),
        "search": {"mode": mode},
    }
