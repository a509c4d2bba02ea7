"""The SDK's VZD module against the running local federation: search (AF_10061, ML-123654)
and the practitioner's own entry with the HBA (AF_10058, ML-123612, ML-123611).

Everything goes through the real processes over TLS: the users' OpenID tokens come from their
Synapses through the Messenger-Proxies, the FHIR-Proxy checks them there, the owner sign-in
runs through the IDP stand-in with the local run's virtual HBA (``hba-dr-demo``,
TelematikID ``1-1-ARZT-DEMO01``), and the directory holds the demo data.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_directory_proxy import owner_token
from tests.support.federation import Federation
from tests.support.users import A, B, User
from timkit.client.directory_search import DirectorySearch
from timkit.client.fhir_api import fhir_call
from timkit.client.hba import OwnerEntries, OwnerToken, owner_login_hba, tim_endpoint
from timkit.client.matrix_api import MatrixApi
from timkit.client.openid import OpenIdToken, SearchToken, request_openid_token
from timkit.core.errors import TimkitError
from timkit.runtime.config import MessengerServiceConfig
from timkit.runtime.demo import HBA_CARD, telematik_id

HBA = str(HBA_CARD["id"])
HBA_TELEMATIK_ID = str(HBA_CARD["telematikID"])
FOREIGN_ROLE = "role-000001"
"""A PractitionerRole of the generated demo data (another practitioner's)."""
FOREIGN_ENDPOINT = "ep-pract-000001"
ORG_A = "Test organisation 0"
"""The organisation running A in the federation of tests.support.federation."""


class CountingTransport(httpx.AsyncBaseTransport):
    """A real HTTPS transport that counts the requests per path."""

    def __init__(self, verify: ssl.SSLContext) -> None:
        self.inner = httpx.AsyncHTTPTransport(verify=verify)
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def directory_url(federation: Federation) -> str:
    return str(federation.component("fhir-proxy")["url"])


def organisation_id(domain: str) -> str:
    service = MessengerServiceConfig(domain=domain, organisation="-", port=1, forward_proxy_port=2)
    return telematik_id(service)


def search_of(user: User, http: httpx.AsyncClient, url: str) -> DirectorySearch:
    async def openid() -> OpenIdToken:
        api = MatrixApi(user.http, user.url, user.nio.access_token)
        return await request_openid_token(api, user.mxid)

    return DirectorySearch(http, url, openid)


@pytest.fixture(scope="module")
async def people(federation: Federation) -> AsyncIterator[dict[str, User]]:
    """Logged-in users of this module: ``doctor`` at A (the HBA holder), ``b1`` at B. Each
    test leaves the doctor's entry as it found it (the organisation directory aside, which
    only the last test changes)."""
    tag = uuid.uuid4().hex[:6]
    made = {"doctor": User(federation, A, f"dr-{tag}"), "b1": User(federation, B, f"b1-{tag}")}
    for user in made.values():
        await user.login()
    try:
        yield made
    finally:
        for user in made.values():
            await user.close()


async def hba_entries(http: httpx.AsyncClient, url: str) -> OwnerEntries:
    token = await owner_login_hba(http, url, HBA)
    return OwnerEntries(http, url, token)


async def test_ml_123654_an_actor_of_service_b_finds_organisation_a_by_mxid_and_name(
    federation: Federation, http: httpx.AsyncClient, people: dict[str, User]
) -> None:
    url = directory_url(federation)
    search = search_of(people["b1"], http, url)
    reception = f"@empfang:{A}"
    [hit] = await search.organisations(mxid=reception)
    assert hit.kind == "organisation"
    assert reception in hit.mxids
    assert hit.telematik_id == organisation_id(A)
    assert hit.organisation == hit.healthcare_service == ORG_A
    assert f"Empfang {ORG_A}" in [e.name for e in hit.endpoints]
    label = hit.label()
    assert label.startswith(f"{ORG_A} - Empfang {ORG_A}")
    assert label.endswith(" (Berlin)")
    # the same in URI notation, by TelematikID, by name, and through search()
    assert await search.organisations(mxid=f"matrix:u/empfang:{A}") == [hit]
    assert await search.organisations(telematik_id=organisation_id(A)) == [hit]
    assert hit in await search.organisations(name=ORG_A)
    assert hit in await search.search(reception)
    assert await search.organisations(mxid=f"@empfang-nicht-da:{A}") == []


async def test_search_tokens_are_cached_and_renewed_once_after_a_401(
    federation: Federation, people: dict[str, User]
) -> None:
    url = directory_url(federation)
    transport = CountingTransport(ssl.create_default_context(cafile=federation.ca_cert))
    async with httpx.AsyncClient(transport=transport, timeout=30) as http:
        search = search_of(people["b1"], http, url)
        await search.organisations(mxid=f"@empfang:{A}")
        await search.practitioners(name="Sonnenschein")
        assert transport.paths.count("/tim-authenticate") == 1
        assert search.exchanges == 1
        assert sum(p.startswith("/search/") for p in transport.paths) == 2
        # a token the FHIR-Proxy no longer accepts (a forged one here): one new exchange,
        # then the search succeeds
        search.seed(SearchToken("forged.token.value", (await search.token()).expires_at))
        assert len(await search.organisations(mxid=f"@empfang:{A}")) == 1
        assert transport.paths.count("/tim-authenticate") == 2
        assert sum(p.startswith("/search/") for p in transport.paths) == 4


async def test_af_10058_ml_123612_hba_sign_in_publish_and_found_by_another_organisation(
    federation: Federation, http: httpx.AsyncClient, people: dict[str, User]
) -> None:
    url = directory_url(federation)
    doctor, b1 = people["doctor"], people["b1"]
    entries = await hba_entries(http, url)
    assert entries.token.telematik_id == HBA_TELEMATIK_ID
    assert entries.token.fresh()
    published = await entries.publish_mxid(doctor.mxid)
    assert published.created
    assert published.mxid == doctor.mxid
    assert published.role == "PractitionerRole/hba-dr-demo-role"
    # publishing again reuses the Endpoint
    again = await entries.publish_mxid(f"matrix:u/{doctor.mxid[1:]}")
    assert (again.endpoint, again.created) == (published.endpoint, False)
    # an actor of the other organisation finds the practitioner by MXID, name, TelematikID
    search = search_of(b1, http, url)
    [hit] = await search.practitioners(mxid=doctor.mxid)
    assert hit.kind == "practitioner"
    assert hit.name == "Dr. med. Clara Sonnenschein"
    assert hit.telematik_id == HBA_TELEMATIK_ID
    assert hit.organisation == ORG_A
    assert hit.mxids == (doctor.mxid,)
    assert hit.endpoints[0].name == "Dr. med. Clara Sonnenschein"
    assert hit in await search.practitioners(name="Sonnenschein")
    assert hit in await search.practitioners(telematik_id=HBA_TELEMATIK_ID)
    assert hit in await search.search(doctor.mxid)
    # removed again: no longer found
    assert await entries.remove_mxid(doctor.mxid) == (published.endpoint,)
    assert await search.practitioners(mxid=doctor.mxid) == []


async def test_ml_123611_a_foreign_practitioner_role_is_refused_as_a_typed_403(
    federation: Federation, http: httpx.AsyncClient, people: dict[str, User]
) -> None:
    url = directory_url(federation)
    doctor = people["doctor"]
    entries = await hba_entries(http, url)
    with pytest.raises(TimkitError) as refused:
        await entries.publish_mxid(doctor.mxid, role_id=FOREIGN_ROLE)
    assert refused.value.status == 403
    assert refused.value.errcode == "forbidden"
    assert refused.value.requirement == "ML-123874"
    assert f"PractitionerRole/{FOREIGN_ROLE} does not belong to TelematikID" in str(refused.value)
    # the Endpoint made for it was deleted again; nothing carries the MXID
    search = search_of(people["b1"], http, url)
    assert await search.practitioners(mxid=doctor.mxid) == []
    owned = await fhir_call(
        http,
        "GET",
        f"{url}/owner/Endpoint",
        entries.token.access_token,
        params=[("address", f"matrix:u/{doctor.mxid[1:]}")],
    )
    assert owned.get("entry", []) == []
    # other spellings of the foreign id reach no foreign entry either
    for spelling in (f"../PractitionerRole/{FOREIGN_ROLE}", f"{FOREIGN_ROLE}%2F", "ROLE-000001"):
        with pytest.raises(TimkitError) as other:
            await entries.publish_mxid(doctor.mxid, role_id=spelling)
        assert other.value.status in (400, 404), (spelling, other.value)
    # the own role may not link another practitioner's Endpoint (written directly)
    roles, _ = await entries.own_roles()
    role = {**roles[0], "endpoint": [{"reference": f"Endpoint/{FOREIGN_ENDPOINT}"}]}
    with pytest.raises(TimkitError) as linked:
        await fhir_call(
            http, "PUT", f"{url}/owner/PractitionerRole/{role['id']}", entries.token.access_token,
            body=role,
        )  # fmt: skip
    assert (linked.value.status, linked.value.requirement) == (422, "ML-123482")
    # without a valid owner-accesstoken nothing is published (testsuite 05.06: 401)
    forged = OwnerEntries(http, url, OwnerToken("not-a-token", HBA_TELEMATIK_ID, 2e9))
    with pytest.raises(TimkitError) as unauthenticated:
        await forged.publish_mxid(doctor.mxid)
    assert unauthenticated.value.status == 401


async def test_only_an_hba_holder_with_a_practitioner_entry_can_publish(
    federation: Federation, http: httpx.AsyncClient, people: dict[str, User]
) -> None:
    """The IDP named explicitly; an SMC-B signs in but has no Practitioner to publish on;
    a card the IDP does not offer is refused before anything is chosen."""
    url = directory_url(federation)
    issuer = str(federation.component("idp")["url"])
    organisation = await owner_login_hba(http, url, "praxis-sonnenschein", idp=issuer)
    assert organisation.telematik_id == organisation_id(A)
    with pytest.raises(TimkitError) as none:
        await OwnerEntries(http, url, organisation).publish_mxid(people["doctor"].mxid)
    assert (none.value.status, none.value.requirement) == (404, "ML-123612")
    with pytest.raises(TimkitError) as unknown:
        await owner_login_hba(http, url, "hba-niemand", idp=issuer)
    assert unknown.value.status == 404
    assert HBA in unknown.value.message


async def test_visibility_off_hides_the_mxid_and_hints_at_the_organisation_directory(
    federation: Federation, http: httpx.AsyncClient, people: dict[str, User], tmp_path: Path
) -> None:
    """Client.adoc "Sichtbarkeit": hidden in the practitioner directory while the organisation
    directory still shows the MXID active → the hint to contact the Org-Admin."""
    url = directory_url(federation)
    doctor, b1 = people["doctor"], people["b1"]
    entries = await hba_entries(http, url)
    await entries.publish_mxid(doctor.mxid)
    search = search_of(b1, http, url)
    try:
        hidden = await entries.set_visibility(doctor.mxid, False)
        assert hidden.visible is False
        assert hidden.hint is None
        assert await search.practitioners(mxid=doctor.mxid) == []
        shown = await entries.set_visibility(doctor.mxid, True)
        assert shown.endpoints == hidden.endpoints
        assert shown.hint is None
        assert len(await search.practitioners(mxid=doctor.mxid)) == 1
        # the organisation's admin also lists the MXID at the practice's HealthcareService
        await _organisation_lists(federation, http, url, tmp_path, doctor.mxid)
        hidden = await entries.set_visibility(doctor.mxid, False)
        assert hidden.hint is not None
        assert doctor.mxid in hidden.hint
        assert "Administrator Ihrer Organisation" in hidden.hint
        assert ORG_A in hidden.hint
        assert await search.practitioners(mxid=doctor.mxid) == []
        [still] = await search.organisations(mxid=doctor.mxid)
        assert still.reference == "HealthcareService/praxis-sonnenschein-hs"
    finally:
        await entries.remove_mxid(doctor.mxid)


async def _organisation_lists(
    federation: Federation, http: httpx.AsyncClient, url: str, tmp_path: Path, mxid: str
) -> None:
    """The Org-Admin of A (RegService-OpenID-Token) links an Endpoint with ``mxid`` to A's
    HealthcareService."""
    token = owner_token(federation, url, tmp_path, organisation_id(A))
    endpoint = {
        **tim_endpoint(f"matrix:u/{mxid[1:]}", "Sprechstunde Dr. Sonnenschein"),
        "managingOrganization": {"reference": "Organization/praxis-sonnenschein-org"},
    }
    created = await fhir_call(http, "POST", f"{url}/owner/Endpoint", token, body=endpoint)
    service_url = f"{url}/owner/HealthcareService/praxis-sonnenschein-hs"
    service: dict[str, Any] = await fhir_call(http, "GET", service_url, token)
    links = [*service.get("endpoint", []), {"reference": f"Endpoint/{created['id']}"}]
    await fhir_call(http, "PUT", service_url, token, body={**service, "endpoint": links})
