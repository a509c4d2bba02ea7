"""The FHIR-Directory's HTTP API, served by the real aiohttp app on a real socket.

Every test runs against SQLite and PostgreSQL (the ``directory`` fixture).
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import timkit.directory as directory_package
from timkit.core.fhir import RESOURCE_TYPES
from timkit.directory.api import create_app
from timkit.directory.handlers import Directory

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "vzd" / "examples"
PACKAGE = Path(directory_package.__file__).parent / "package"
PROFILE_BASE = "https://gematik.de/fhir/directory/StructureDefinition"
FHIR_JSON = "application/fhir+json"
REQ = "ML-123880"
STRICT = {"Prefer": "handling=strict"}
# A value each search parameter type accepts ("x" is fine for most).
VALUE_BY_TYPE = {"date": "2024-01-01", "special": "52.52|13.40|10|km"}


TOKEN = "directory-token-for-tests-" + "y" * 32


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
    return data


def _endpoint(
    resource_id: str | None = None, name: str | None = "Praxis Test", **changes: Any
) -> dict[str, Any]:
    """The TIM endpoint example with id and name set; ``None`` drops the id, name or a change."""
    resource = _example("Endpoint-OrganizationExample001-Endpoint-TIM")
    for key, value in {"id": resource_id, "name": name, **changes}.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return resource


def _organization(name: str = "Praxis Organisation", telematik_id: str = "1-2.3") -> dict[str, Any]:
    resource = _example("Organization-OrganizationExample001")
    resource.pop("id")
    resource["name"] = name
    resource["identifier"] = [
        {"system": "https://gematik.de/fhir/sid/telematik-id", "value": telematik_id}
    ]
    return resource


@dataclass(frozen=True)
class Reply:
    """A response: status, headers and the parsed JSON body (``None`` when empty)."""

    status: int
    headers: Mapping[str, str]
    body: Any

    @property
    def issue(self) -> dict[str, Any]:
        """The first issue of an OperationOutcome body (asserting that it is one)."""
        assert self.headers["Content-Type"].startswith(FHIR_JSON), self.headers
        assert self.body["resourceType"] == "OperationOutcome", self.body
        issue: dict[str, Any] = self.body["issue"][0]
        assert issue["severity"] in ("error", "fatal")
        return issue

    @property
    def issue_text(self) -> str:
        """Diagnostics and expressions of the first issue, for ``in`` checks."""
        issue = self.issue
        return " ".join([issue.get("diagnostics", ""), *issue.get("expression", [])])


class Api:
    """A thin FHIR client over aiohttp's test client."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client
        self.base = str(client.make_url("")).rstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        resource: Any = None,
        data: bytes | str | None = None,
        content_type: str = FHIR_JSON,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = {"Authorization": f"Bearer {TOKEN}", **(headers or {})}
        if resource is not None:
            data = json.dumps(resource)
        if data is not None:
            sent["Content-Type"] = content_type
        async with self.client.request(method, path, data=data, headers=sent) as response:
            raw = await response.read()
            body = json.loads(raw) if raw else None
            return Reply(response.status, response.headers, body)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, resource: Any = None, **kwargs: Any) -> Reply:
        return await self.request("POST", path, resource=resource, **kwargs)

    async def put(self, path: str, resource: Any = None, **kwargs: Any) -> Reply:
        return await self.request("PUT", path, resource=resource, **kwargs)

    async def delete(self, path: str) -> Reply:
        return await self.request("DELETE", path)

    async def created(self, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        """POST ``resource``; the stored resource (asserting 201)."""
        reply = await self.post(f"/{resource_type}", resource)
        assert reply.status == 201, reply.body
        stored: dict[str, Any] = reply.body
        return stored

    async def count(self, resource_type: str, **params: str) -> int:
        """How many ``resource_type`` match ``params`` (``_summary=count``)."""
        query = urlencode({**params, "_summary": "count"})
        reply = await self.get(f"/{resource_type}?{query}")
        assert reply.status == 200, reply.body
        total: int = reply.body["total"]
        return total

    async def search_ids(self, path: str, **kwargs: Any) -> list[str]:
        reply = await self.get(path, **kwargs)
        assert reply.status == 200, reply.body
        return [e["resource"]["id"] for e in reply.body.get("entry", [])]


@pytest.fixture
async def api(directory: Directory) -> AsyncIterator[Api]:
    """The app on ``directory``, listening on a free loopback port."""
    app = create_app(directory, token=TOKEN, workers=4)
    async with TestClient(TestServer(app)) as client:
        yield Api(client)


# -- read, vread, create, update, delete ----------------------------------------------------


async def test_read_returns_the_current_version_with_etag_and_last_modified(api: Api) -> None:
    assert (await api.put("/Endpoint/ep-read", _endpoint("ep-read"))).status == 201

    reply = await api.get("/Endpoint/ep-read")

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith(FHIR_JSON)
    assert reply.headers["ETag"] == 'W/"1"'
    assert reply.body["id"] == "ep-read"
    assert reply.body["name"] == "Praxis Test"
    assert reply.body["meta"]["versionId"] == "1"
    assert reply.body["meta"]["tag"] == _endpoint()["meta"]["tag"]
    last_updated = datetime.fromisoformat(reply.body["meta"]["lastUpdated"])
    modified = parsedate_to_datetime(reply.headers["Last-Modified"])
    assert modified == last_updated.replace(microsecond=0)


async def test_vread_returns_each_version(api: Api) -> None:
    await api.put("/Endpoint/ep-v", _endpoint("ep-v", name="Erste"))
    await api.put("/Endpoint/ep-v", _endpoint("ep-v", name="Zweite"))

    first = await api.get("/Endpoint/ep-v/_history/1")
    second = await api.get("/Endpoint/ep-v/_history/2")

    assert (first.status, first.body["name"], first.headers["ETag"]) == (200, "Erste", 'W/"1"')
    assert (second.status, second.body["name"], second.headers["ETag"]) == (200, "Zweite", 'W/"2"')
    assert (await api.get("/Endpoint/ep-v/_history/3")).issue["code"] == "not-found"
    assert (await api.get("/Endpoint/ep-v/_history/x")).status == 404


async def test_create_assigns_an_id_and_answers_201_with_location(api: Api) -> None:
    reply = await api.post("/Endpoint", _endpoint("client-chosen"))

    assert reply.status == 201
    assigned = reply.body["id"]
    assert assigned != "client-chosen"
    assert reply.headers["Location"] == f"{api.base}/Endpoint/{assigned}/_history/1"
    assert reply.headers["ETag"] == 'W/"1"'
    assert reply.body["meta"]["versionId"] == "1"
    read = await api.get(reply.headers["Location"].removeprefix(api.base))
    assert (read.status, read.body["id"]) == (200, assigned)
    assert (await api.get("/Endpoint/client-chosen")).status == 404


async def test_update_makes_version_2_and_update_of_an_unknown_id_creates_it(api: Api) -> None:
    created = await api.put("/Endpoint/ep-u", _endpoint("ep-u", name="Alt"))
    assert created.status == 201
    assert created.headers["Location"] == f"{api.base}/Endpoint/ep-u/_history/1"

    updated = await api.put("/Endpoint/ep-u", _endpoint("ep-u", name="Neu"))

    assert updated.status == 200
    assert updated.headers["ETag"] == 'W/"2"'
    assert updated.body["meta"]["versionId"] == "2"
    read = await api.get("/Endpoint/ep-u")
    assert (read.body["name"], read.headers["ETag"]) == ("Neu", 'W/"2"')
    assert await api.search_ids("/Endpoint?name=Alt") == []
    assert await api.search_ids("/Endpoint?name=Neu") == ["ep-u"]


async def test_delete_leaves_a_tombstone(api: Api) -> None:
    await api.put("/Endpoint/ep-d", _endpoint("ep-d", name="Weg"))

    deleted = await api.delete("/Endpoint/ep-d")

    assert deleted.status == 204
    gone = await api.get("/Endpoint/ep-d")
    assert gone.status == 410
    assert gone.issue["code"] == "deleted"
    first = await api.get("/Endpoint/ep-d/_history/1")
    assert (first.status, first.body["name"]) == (200, "Weg")
    assert (await api.get("/Endpoint/ep-d/_history/2")).status == 410
    history = await api.get("/Endpoint/ep-d/_history")
    assert [e["request"]["method"] for e in history.body["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history.body["entry"][0]
    assert await api.count("Endpoint", name="Weg") == 0
    assert (await api.delete("/Endpoint/ep-d")).status == 204  # idempotent
    assert len((await api.get("/Endpoint/ep-d/_history")).body["entry"]) == 2


async def test_update_after_delete_recreates_with_the_next_version(api: Api) -> None:
    await api.put("/Endpoint/ep-r", _endpoint("ep-r"))
    await api.delete("/Endpoint/ep-r")

    again = await api.put("/Endpoint/ep-r", _endpoint("ep-r", name="Wieder da"))

    assert (again.status, again.headers["ETag"]) == (201, 'W/"3"')
    assert await api.search_ids("/Endpoint?name=Wieder") == ["ep-r"]


async def test_if_match_with_the_current_version_updates(api: Api) -> None:
    await api.put("/Endpoint/ep-m", _endpoint("ep-m"))

    reply = await api.put(
        "/Endpoint/ep-m", _endpoint("ep-m", name="Geändert"), headers={"If-Match": 'W/"1"'}
    )

    assert (reply.status, reply.headers["ETag"]) == (200, 'W/"2"')


async def test_if_match_with_a_stale_version_is_412_and_changes_nothing(api: Api) -> None:
    await api.put("/Endpoint/ep-s", _endpoint("ep-s", name="Eins"))
    await api.put("/Endpoint/ep-s", _endpoint("ep-s", name="Zwei"))

    reply = await api.put(
        "/Endpoint/ep-s", _endpoint("ep-s", name="Verloren"), headers={"If-Match": 'W/"1"'}
    )

    assert reply.status == 412
    assert reply.issue["code"] == "conflict"
    read = await api.get("/Endpoint/ep-s")
    assert (read.body["name"], read.headers["ETag"]) == ("Zwei", 'W/"2"')
    assert await api.count("Endpoint", name="Verloren") == 0
    absent = await api.put("/Endpoint/nie", _endpoint("nie"), headers={"If-Match": 'W/"1"'})
    assert absent.status == 412
    assert (await api.get("/Endpoint/nie")).status == 404
    bad = await api.put("/Endpoint/ep-s", _endpoint("ep-s"), headers={"If-Match": "kaputt"})
    assert bad.status == 400
    assert "If-Match" in bad.issue_text


async def test_conditional_create_with_no_match_creates(api: Api) -> None:
    reply = await api.post(
        "/Endpoint", _endpoint(name="Einzig"), headers={"If-None-Exist": "name=Einzig"}
    )

    assert reply.status == 201
    assert await api.count("Endpoint") == 1


async def test_conditional_create_with_one_match_returns_it_and_creates_nothing(api: Api) -> None:
    existing = await api.created("Endpoint", _endpoint(name="Einzig"))

    reply = await api.post(
        "/Endpoint", _endpoint(name="Einzig"), headers={"If-None-Exist": "name=Einzig"}
    )

    assert reply.status == 200
    assert reply.body["id"] == existing["id"]
    assert reply.headers["ETag"] == 'W/"1"'
    assert await api.count("Endpoint") == 1


async def test_conditional_create_with_two_matches_is_412(api: Api) -> None:
    await api.created("Endpoint", _endpoint(name="Doppel eins"))
    await api.created("Endpoint", _endpoint(name="Doppel zwei"))

    reply = await api.post(
        "/Endpoint", _endpoint(name="Doppel drei"), headers={"If-None-Exist": "name=Doppel"}
    )

    assert reply.status == 412
    assert "If-None-Exist" in reply.issue_text
    assert await api.count("Endpoint") == 2


async def test_history_lists_versions_newest_first(api: Api) -> None:
    for name in ("Eins", "Zwei", "Drei"):
        await api.put("/Endpoint/ep-h", _endpoint("ep-h", name=name))

    reply = await api.get("/Endpoint/ep-h/_history")

    assert reply.status == 200
    assert (reply.body["resourceType"], reply.body["type"]) == ("Bundle", "history")
    assert reply.body["total"] == 3
    entries = reply.body["entry"]
    assert [e["resource"]["meta"]["versionId"] for e in entries] == ["3", "2", "1"]
    assert [e["resource"]["name"] for e in entries] == ["Drei", "Zwei", "Eins"]
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert all(e["fullUrl"] == f"{api.base}/Endpoint/ep-h" for e in entries)
    assert (await api.get("/Endpoint/nie/_history")).status == 404


# -- search ---------------------------------------------------------------------------------


async def test_search_by_get_and_by_post_form_give_the_same_result(api: Api) -> None:
    for i, name in enumerate(("Praxis Nord", "Praxis Süd", "Apotheke")):
        await api.put(f"/Endpoint/ep-{i}", _endpoint(f"ep-{i}", name=name))
    params = [("name", "praxis"), ("status", "active"), ("_sort", "_id")]

    by_get = await api.get(f"/Endpoint?{urlencode(params)}")
    by_post = await api.post(
        "/Endpoint/_search",
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
    )

    assert by_get.status == by_post.status == 200
    assert by_get.body["type"] == "searchset"
    ids = [e["resource"]["id"] for e in by_get.body["entry"]]
    assert ids == ["ep-0", "ep-1"]
    assert [e["resource"]["id"] for e in by_post.body["entry"]] == ids
    assert by_get.body["total"] == by_post.body["total"] == 2
    assert by_get.body["link"] == by_post.body["link"]


async def test_post_search_combines_query_string_and_form(api: Api) -> None:
    await api.put("/Endpoint/ep-a", _endpoint("ep-a", name="Praxis A"))
    await api.put("/Endpoint/ep-b", _endpoint("ep-b", name="Praxis B"))

    reply = await api.post(
        "/Endpoint/_search?name=praxis",
        data="_id=ep-b",
        content_type="application/x-www-form-urlencoded",
    )

    assert [e["resource"]["id"] for e in reply.body["entry"]] == ["ep-b"]


async def test_post_search_with_a_json_body_is_415(api: Api) -> None:
    reply = await api.post("/Endpoint/_search", {"name": "x"})

    assert reply.status == 415
    assert reply.issue["code"] == "not-supported"


async def test_strict_handling_rejects_an_unknown_parameter_naming_it(api: Api) -> None:
    reply = await api.get("/Endpoint?name=x&unbekannt=1", headers=STRICT)

    assert reply.status == 400
    assert "unbekannt" in reply.issue_text


async def test_unknown_parameters_are_ignored_without_strict_handling(api: Api) -> None:
    await api.put("/Endpoint/ep-l", _endpoint("ep-l", name="Lenient"))

    reply = await api.get("/Endpoint?name=lenient&unbekannt=1")

    assert reply.status == 200
    assert [e["resource"]["id"] for e in reply.body["entry"]] == ["ep-l"]
    assert "unbekannt" not in reply.body["link"][0]["url"]


# -- transaction and batch Bundles -------------------------------------------------------------


def _entry(method: str, url: str, resource: Any = None, **extra: Any) -> dict[str, Any]:
    request = {"method": method, "url": url}
    request.update({k: v for k, v in extra.items() if k in ("ifNoneExist", "ifMatch")})
    entry: dict[str, Any] = {"request": request}
    if resource is not None:
        entry["resource"] = resource
    if "fullUrl" in extra:
        entry["fullUrl"] = extra["fullUrl"]
    return entry


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _target(location: str) -> tuple[str, str]:
    """``(type, id)`` of a response ``location`` ``Type/id/_history/n``."""
    resource_type, resource_id, _history, _version = location.split("/")
    return resource_type, resource_id


async def test_transaction_gives_urn_uuid_entries_ids_and_rewrites_references(api: Api) -> None:
    org_urn, endpoint_urn = _urn(), _urn()
    organization = {
        **_organization("Transaktionspraxis"),
        "endpoint": [{"reference": endpoint_urn}],
    }
    endpoint = _endpoint(managingOrganization={"reference": org_urn})
    bundle = _bundle(
        "transaction",
        _entry("POST", "Organization", organization, fullUrl=org_urn),
        _entry("POST", "Endpoint", endpoint, fullUrl=endpoint_urn),
    )

    reply = await api.post("/", bundle)

    assert reply.status == 200, reply.body
    assert reply.body["type"] == "transaction-response"
    responses = [e["response"] for e in reply.body["entry"]]
    assert [r["status"] for r in responses] == ["201 Created", "201 Created"]
    org_type, org_id = _target(responses[0]["location"])
    endpoint_type, endpoint_id = _target(responses[1]["location"])
    assert (org_type, endpoint_type) == ("Organization", "Endpoint")
    stored_org = (await api.get(f"/Organization/{org_id}")).body
    stored_endpoint = (await api.get(f"/Endpoint/{endpoint_id}")).body
    assert stored_org["endpoint"] == [{"reference": f"Endpoint/{endpoint_id}"}]
    assert stored_endpoint["managingOrganization"] == {"reference": f"Organization/{org_id}"}
    found = await api.search_ids(f"/Endpoint?organization=Organization/{org_id}")
    assert found == [endpoint_id]
    assert await api.search_ids(f"/Organization?endpoint={endpoint_id}") == [org_id]


async def test_transaction_resolves_put_full_urls_and_matching_conditional_creates(
    api: Api,
) -> None:
    existing = await api.created("Organization", _organization("Bestand", "1-bestand"))
    org_urn, endpoint_urn = _urn(), _urn()
    bundle = _bundle(
        "transaction",
        _entry(
            "POST",
            "Organization",
            _organization("Bestand Kopie", "1-bestand"),
            fullUrl=org_urn,
            ifNoneExist="identifier=https://gematik.de/fhir/sid/telematik-id|1-bestand",
        ),
        _entry(
            "PUT",
            "Endpoint/ep-t",
            _endpoint("ep-t", managingOrganization={"reference": org_urn}),
            fullUrl=endpoint_urn,
        ),
        _entry(
            "POST",
            "Organization",
            {**_organization("Neu", "1-neu"), "endpoint": [{"reference": endpoint_urn}]},
        ),
    )

    reply = await api.post("/", bundle)

    assert reply.status == 200, reply.body
    statuses = [e["response"]["status"] for e in reply.body["entry"]]
    assert statuses == ["200 OK", "201 Created", "201 Created"]
    assert reply.body["entry"][0]["resource"]["id"] == existing["id"]
    endpoint = (await api.get("/Endpoint/ep-t")).body
    assert endpoint["managingOrganization"] == {"reference": f"Organization/{existing['id']}"}
    _, new_id = _target(reply.body["entry"][2]["response"]["location"])
    assert (await api.get(f"/Organization/{new_id}")).body["endpoint"] == [
        {"reference": "Endpoint/ep-t"}
    ]
    assert await api.count("Organization") == 2


async def test_transaction_with_an_invalid_entry_stores_nothing(api: Api) -> None:
    bundle = _bundle(
        "transaction",
        _entry("POST", "Organization", _organization("Gut")),
        _entry("POST", "Endpoint", _endpoint(name="Gut")),
        _entry("POST", "Endpoint", _endpoint(name=None)),
    )

    reply = await api.post("/", bundle)

    assert reply.status == 422
    assert reply.issue["code"] == "required"
    assert "Bundle.entry[2]" in reply.issue["diagnostics"]
    assert "Bundle.entry[2].resource.name" in reply.issue["expression"]
    assert await api.count("Organization") == 0
    assert await api.count("Endpoint") == 0


async def test_transaction_failing_while_writing_rolls_back_earlier_entries(api: Api) -> None:
    await api.put("/Endpoint/ep-x", _endpoint("ep-x", name="Vorher"))
    bundle = _bundle(
        "transaction",
        _entry("POST", "Organization", _organization("Zurückgerollt")),
        _entry("PUT", "Endpoint/ep-x", _endpoint("ep-x", name="Nachher")),
        _entry("DELETE", "Endpoint/ep-x"),
        _entry("PUT", "Endpoint/ep-y", _endpoint("ep-y"), ifMatch='W/"4"'),
    )

    reply = await api.post("/", bundle)

    assert reply.status == 412
    assert "Bundle.entry[3]" in reply.issue["diagnostics"]
    assert await api.count("Organization") == 0
    read = await api.get("/Endpoint/ep-x")
    assert (read.status, read.body["name"], read.headers["ETag"]) == (200, "Vorher", 'W/"1"')
    assert await api.count("Endpoint", name="Vorher") == 1
    assert (await api.get("/Endpoint/ep-y")).status == 404


async def test_batch_entries_succeed_or_fail_alone(api: Api) -> None:
    bundle = _bundle(
        "batch",
        _entry("POST", "Endpoint", _endpoint(name="Gut eins")),
        _entry("POST", "Endpoint", _endpoint(name=None)),
        _entry("PUT", "Endpoint/ep-b2", _endpoint("ep-b2", name="Gut zwei")),
        _entry("PUT", "Endpoint/ep-b3", _endpoint("anders")),
        _entry("PATCH", "Endpoint/ep-b2"),
    )

    reply = await api.post("/", bundle)

    assert reply.status == 200
    assert reply.body["type"] == "batch-response"
    entries = reply.body["entry"]
    statuses = [e["response"]["status"] for e in entries]
    assert statuses[0] == "201 Created"
    assert statuses[1].startswith("422")
    assert statuses[2] == "201 Created"
    assert statuses[3].startswith("400")
    assert statuses[4].startswith("400")
    bad = entries[1]["response"]["outcome"]
    assert bad["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[1].resource.name" in bad["issue"][0]["expression"]
    assert "Bundle.entry[3]" in entries[3]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert await api.count("Endpoint") == 2
    assert await api.search_ids("/Endpoint?name=gut&_sort=name") == [
        entries[0]["resource"]["id"],
        "ep-b2",
    ]


async def test_batch_get_entries_read_and_search(api: Api) -> None:
    await api.put("/Endpoint/ep-g", _endpoint("ep-g", name="Gelesen"))
    bundle = _bundle(
        "batch",
        _entry("GET", "Endpoint/ep-g"),
        _entry("GET", "Endpoint?name=gelesen"),
        _entry("GET", "Endpoint/unbekannt"),
        _entry("GET", "Patient?name=x"),
    )

    reply = await api.post("/", bundle)

    assert reply.status == 200
    read, search, missing, patient = reply.body["entry"]
    assert read["response"]["status"].startswith("200")
    assert read["response"]["etag"] == 'W/"1"'
    assert read["resource"]["name"] == "Gelesen"
    assert search["response"]["status"].startswith("200")
    assert search["resource"]["type"] == "searchset"
    assert [e["resource"]["id"] for e in search["resource"]["entry"]] == ["ep-g"]
    assert missing["response"]["status"].startswith("404")
    assert missing["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert patient["response"]["status"].startswith("400")
    assert REQ in patient["response"]["outcome"]["issue"][0]["diagnostics"]


async def test_a_bundle_of_another_type_is_400(api: Api) -> None:
    reply = await api.post("/", {"resourceType": "Bundle", "type": "collection", "entry": []})

    assert reply.status == 400
    assert "Bundle.type" in reply.issue_text


# -- CapabilityStatement -----------------------------------------------------------------------


async def test_metadata_declares_fhir_4_0_1_the_six_types_and_the_vzd_parameters(api: Api) -> None:
    reply = await api.get("/metadata")

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith(FHIR_JSON)
    statement = reply.body
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    (rest,) = statement["rest"]
    assert {i["code"] for i in rest["interaction"]} >= {"transaction", "batch"}
    resources = {r["type"]: r for r in rest["resource"]}
    assert sorted(resources) == sorted(RESOURCE_TYPES)
    assert len(rest["resource"]) == 6
    params = {t: {p["name"]: p for p in r["searchParam"]} for t, r in resources.items()}
    for path in sorted(PACKAGE.glob("SearchParameter-*.json")):  # the api-vzd parameters
        definition = json.loads(path.read_text("utf-8"))
        for base in definition["base"]:
            declared = params[base][definition["code"]]
            assert declared["definition"] == definition["url"], path.name
            assert declared["type"] == definition["type"], path.name
    assert params["Endpoint"]["address"]["definition"].startswith("https://gematik.de/")
    for resource_type in ("PractitionerRole", "HealthcareService", "Endpoint"):
        assert "owner-telematik-id" in params[resource_type], resource_type
    assert "holder-id" in params["PractitionerRole"]
    assert "organizationVisibility" in params["Organization"]
    assert "endpointVisibility" in params["Endpoint"]
    assert "coverageAreaPostalCode" in params["HealthcareService"]
    assert "near" in params["Location"]
    for resource_type, resource in resources.items():
        assert resource["profile"] == f"{PROFILE_BASE}/{resource_type}Directory"
        interactions = {i["code"] for i in resource["interaction"]}
        assert {"read", "vread", "create", "update", "delete", "search-type"} <= interactions
        assert {"_id", "_lastUpdated", "_text", "_content"} <= set(params[resource_type])
        assert all(p["type"] and p["definition"] for p in resource["searchParam"])


async def test_every_declared_search_parameter_and_include_is_accepted_strictly(
    api: Api,
) -> None:
    statement = (await api.get("/metadata")).body
    refused = []
    for resource in statement["rest"][0]["resource"]:
        resource_type = resource["type"]
        queries = [(p["name"], VALUE_BY_TYPE.get(p["type"], "x")) for p in resource["searchParam"]]
        queries += [("_include", v) for v in resource["searchInclude"]]
        queries += [("_revinclude", v) for v in resource["searchRevInclude"]]
        for name, value in queries:
            reply = await api.get(f"/{resource_type}?{urlencode({name: value})}", headers=STRICT)
            if reply.status != 200:
                refused.append((resource_type, name, value, reply.status, reply.body))
    assert refused == []


# -- errors -----------------------------------------------------------------------------------


async def test_ml_123880_an_unknown_resource_type_is_an_operation_outcome(api: Api) -> None:
    for method, path, resource in (
        ("GET", "/Patient", None),
        ("GET", "/Patient/p1", None),
        ("POST", "/Patient", {"resourceType": "Patient"}),
        ("PUT", "/Patient/p1", {"resourceType": "Patient", "id": "p1"}),
        ("GET", "/Patient/p1/_history", None),
    ):
        reply = await api.request(method, path, resource=resource)
        assert reply.status == 400, (method, path)
        assert REQ in reply.issue["diagnostics"]
        assert "Patient" in reply.issue["diagnostics"]
        assert reply.issue["code"] == "not-supported"


async def test_ml_123880_a_resource_of_another_type_than_the_url_is_refused(api: Api) -> None:
    reply = await api.post("/Endpoint", _organization())

    assert reply.status == 400
    assert REQ in reply.issue["diagnostics"]
    assert await api.count("Organization") == 0


async def test_ml_123880_a_resource_missing_a_profile_element_is_422_naming_it(api: Api) -> None:
    reply = await api.post("/Endpoint", _endpoint(name=None))

    assert reply.status == 422
    assert reply.issue["code"] == "required"
    assert reply.issue["expression"] == ["Endpoint.name"]
    assert REQ in reply.issue["diagnostics"]
    assert await api.count("Endpoint") == 0


async def test_ml_123880_a_structurally_invalid_resource_is_400_naming_the_element(
    api: Api,
) -> None:
    reply = await api.put("/Endpoint/ep-i", _endpoint("ep-i", status=["active"]))

    assert reply.status == 400
    assert reply.issue["code"] == "structure"
    assert "Endpoint.status" in reply.issue["expression"]
    assert (await api.get("/Endpoint/ep-i")).status == 404


async def test_an_unknown_id_is_404(api: Api) -> None:
    reply = await api.get("/Endpoint/unbekannt")

    assert reply.status == 404
    assert reply.issue["code"] == "not-found"
    assert "Endpoint/unbekannt" in reply.issue["diagnostics"]


async def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    for method, path in (("POST", "/Endpoint"), ("PUT", "/Endpoint/e"), ("POST", "/")):
        reply = await api.request(method, path, data=b'{"resourceType": "End')
        assert reply.status == 400, path
        assert reply.issue["code"] == "structure"
    assert (await api.post("/Endpoint", data="[1, 2]")).status == 400


async def test_a_body_of_the_wrong_content_type_is_415(api: Api) -> None:
    reply = await api.post(
        "/Endpoint", data=json.dumps(_endpoint()), content_type="application/xml"
    )

    assert reply.status == 415
    assert "application/xml" in reply.issue["diagnostics"]
    plain_json = await api.post(
        "/Endpoint", data=json.dumps(_endpoint()), content_type="application/json"
    )
    assert plain_json.status == 201


async def test_put_with_an_id_other_than_the_url_is_400(api: Api) -> None:
    reply = await api.put("/Endpoint/url-id", _endpoint("body-id"))

    assert reply.status == 400
    assert reply.issue["expression"] == ["Endpoint.id"]
    assert (await api.put("/Endpoint/url-id", _endpoint())).status == 400
    assert await api.count("Endpoint") == 0


async def test_unknown_routes_and_methods_are_operation_outcomes(api: Api) -> None:
    not_found = await api.get("/Endpoint/e/_history/1/mehr")
    assert not_found.status == 404
    assert not_found.issue["code"] == "not-found"
    not_allowed = await api.request("PATCH", "/Endpoint/e")
    assert not_allowed.status == 405
    assert not_allowed.issue["code"] == "not-supported"


async def test_health(api: Api) -> None:
    reply = await api.get("/health")

    assert (reply.status, reply.body) == (200, {"status": "ok"})


async def test_alias_types_are_accepted_in_urls(api: Api) -> None:
    created = await api.post("/TIOrganization", _organization("Alias Praxis"))
    assert created.status == 201
    org_id = created.body["id"]
    assert created.headers["Location"] == f"{api.base}/Organization/{org_id}/_history/1"

    read = await api.get(f"/TIOrganization/{org_id}")
    assert (read.status, read.body["resourceType"]) == (200, "Organization")
    assert await api.search_ids("/TIOrganization?name=alias") == [org_id]
    aliased = {**copy.deepcopy(read.body), "resourceType": "TIOrganization", "name": "Neu"}
    updated = await api.put(f"/TIOrganization/{org_id}", aliased)
    assert (updated.status, updated.body["resourceType"]) == (200, "Organization")
    history = await api.get(f"/TIOrganization/{org_id}/_history")
    assert history.body["total"] == 2
    assert (await api.delete(f"/TIOrganization/{org_id}")).status == 204
    assert (await api.get(f"/Organization/{org_id}")).status == 410


async def test_search_pages_follow_next_links(api: Api) -> None:
    for i in range(5):
        await api.put(f"/Endpoint/ep-p{i}", _endpoint(f"ep-p{i}", name=f"Seite {i}"))

    seen: list[str] = []
    reply = await api.get("/Endpoint?name=seite&_count=2&_sort=-_id")
    pages = 1
    while True:
        assert reply.status == 200, reply.body
        seen += [e["resource"]["id"] for e in reply.body.get("entry", [])]
        links = {link["relation"]: link["url"] for link in reply.body["link"]}
        if "next" not in links:
            break
        assert links["next"].startswith(f"{api.base}/Endpoint?")
        reply = await api.get(links["next"].removeprefix(api.base))
        pages += 1

    assert seen == [f"ep-p{i}" for i in (4, 3, 2, 1, 0)]
    assert pages == 3


async def test_concurrent_writes_are_serialised(api: Api) -> None:
    async def put(n: int) -> Reply:
        return await api.put("/Endpoint/ep-c", _endpoint("ep-c", name=f"Fassung {n}"))

    replies = await asyncio.gather(*(put(n) for n in range(12)))
    created = await asyncio.gather(*(api.post("/Endpoint", _endpoint()) for _ in range(12)))

    assert sorted(r.headers["ETag"] for r in replies) == sorted(f'W/"{n}"' for n in range(1, 13))
    assert [r.status for r in replies].count(201) == 1
    assert {r.status for r in created} == {201}
    assert len({r.body["id"] for r in created}) == 12
    history = await api.get("/Endpoint/ep-c/_history")
    assert [e["resource"]["meta"]["versionId"] for e in history.body["entry"]] == [
        str(n) for n in range(12, 0, -1)
    ]
    assert await api.count("Endpoint") == 13


async def test_ml_123880_a_transaction_entry_of_an_unknown_type_stores_nothing(api: Api) -> None:
    for bad in (
        _entry("POST", "Patient", {"resourceType": "Patient"}),
        _entry("PUT", "Endpoint/ep-z", _endpoint("ep-z", status=["active"])),
    ):
        bundle = _bundle("transaction", _entry("POST", "Endpoint", _endpoint()), bad)

        reply = await api.post("/", bundle)

        assert reply.status == 400, reply.body
        assert reply.issue["diagnostics"].startswith("Bundle.entry[1]")
        assert all(e.startswith("Bundle.entry[1].") for e in reply.issue["expression"])
        assert REQ in reply.issue["diagnostics"]
        assert await api.count("Endpoint") == 0


# -- the directory's bearer token (issue 14: only the FHIR-Proxy may talk to it) -------------


async def test_every_route_but_health_needs_the_directory_token(api: Api) -> None:
    health = await api.client.get("/health")
    assert health.status == 200
    for method, path in (
        ("GET", "/metadata"),
        ("GET", "/Endpoint"),
        ("GET", "/Endpoint/x"),
        ("POST", "/Endpoint"),
        ("PUT", "/Endpoint/x"),
        ("DELETE", "/Endpoint/x"),
        ("POST", "/"),
        ("GET", "/no/such/route"),
    ):
        async with api.client.request(method, path) as response:
            assert response.status == 401, (method, path)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            body = await response.json(content_type=None)
            assert body["resourceType"] == "OperationOutcome"
            assert "Authorization: Bearer" in body["issue"][0]["diagnostics"]


async def test_a_wrong_or_malformed_directory_token_is_refused(api: Api) -> None:
    for header in (
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        f"Bearer {TOKEN.upper()}",
    ):
        reply = await api.get("/metadata", headers={"Authorization": header})
        assert reply.status == 401, header
        assert reply.body["resourceType"] == "OperationOutcome"
    assert (await api.get("/metadata", headers={"Authorization": f"bearer {TOKEN}"})).status == 200


async def test_a_duplicated_authorization_header_is_refused(api: Api) -> None:
    async with api.client.get(
        "/metadata",
        headers=[("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {TOKEN}")],
    ) as response:
        assert response.status == 400
        body = await response.json(content_type=None)
        assert "Authorization given 2 times" in body["issue"][0]["diagnostics"]


def test_the_directory_app_needs_a_token(directory: Directory) -> None:
    with pytest.raises(ValueError, match="token"):
        create_app(directory, token="")


async def test_has_nested_20_deep_is_a_400_not_a_database_error(api: Api) -> None:
    """Finding 8: SQLite's parser overflowed its stack on this (500)."""
    reply = await api.get("/Organization?" + "_has:Organization:partof:" * 20 + "name=x")
    assert reply.status == 400, reply.body
    assert reply.issue["code"] == "too-costly"
    assert "the limit is" in reply.issue["diagnostics"]
