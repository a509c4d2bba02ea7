"""Stage 3 for the RD's proxies: ``POST /vzd/invite`` decided by the directory's whereIs."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.fhirproxy.api.test_provider_services_routes import (
    _endpoint,
    _example,
    _organization,
    _put,
)
from tests.registration.provisioning.stack import (
    ACTIVE_TID,
    PROXY_TOKEN,
    RdStack,
    database_url,
    start_rd,
)

from timkit.registration.invite_policy import decide

ORG = "@empfang:loc.example.de"
PRACT = "@arzt:loc.example.de"
PRACT2 = "@aerztin:loc.example.de"
HIDDEN = "@alone:loc.example.de"
UNKNOWN = "@nobody:loc.example.de"


@pytest.fixture
async def rd(tmp_path: Path) -> AsyncIterator[RdStack]:
    """RD + FHIR stack with an org MXID, two practitioner MXIDs and an unreferenced one."""
    async for stack in start_rd(tmp_path, database_url("sqlite", tmp_path, None)):
        fhir = stack.fhir
        await _endpoint(fhir, "ep-org", "matrix:u/empfang:loc.example.de")
        await _organization(
            fhir, "loc-org", ACTIVE_TID, active=True, endpoint=[{"reference": "Endpoint/ep-org"}]
        )
        for n, local in enumerate(("arzt", "aerztin")):
            await _endpoint(fhir, f"ep-pract-{n}", f"matrix:u/{local}:loc.example.de")
            role = copy.deepcopy(_example("PractitionerRole-PractitionerRoleExample"))
            role.update(id=f"loc-role-{n}", endpoint=[{"reference": f"Endpoint/ep-pract-{n}"}])
            await _put(fhir, role)
        await _endpoint(fhir, "ep-alone", "matrix:u/alone:loc.example.de")
        yield stack


async def _invite(
    rd: RdStack, inviting: str, invited: str, token: str = PROXY_TOKEN
) -> httpx.Response:
    body = {"invitingUser": inviting, "invitedUser": invited}
    return await rd.api("POST", "/vzd/invite", token, json=body)


@pytest.mark.parametrize(
    ("inviting", "invited", "allowed"),
    [
        (UNKNOWN, ORG, True),  # invitee in the organisation directory
        (PRACT, ORG, True),
        (PRACT, PRACT2, True),  # both in the personal directory
        (UNKNOWN, PRACT, False),  # inviter not in the personal directory
        (ORG, PRACT, False),  # an org address is not in the personal directory
        (PRACT, HIDDEN, False),  # endpoint not listed anywhere (hidden)
        (PRACT, UNKNOWN, False),  # not in the directory at all
    ],
)
async def test_stage_3_rules(rd: RdStack, inviting: str, invited: str, allowed: bool) -> None:
    response = await _invite(rd, inviting, invited)
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["allowed"] is True
    else:
        assert response.status_code == 403
        assert response.json()["errcode"] == "M_FORBIDDEN"
        assert "3.5.2.3" in response.json()["error"]


async def test_only_the_rds_proxies_may_ask_and_bad_input_is_400(rd: RdStack) -> None:
    assert (await rd.api("POST", "/vzd/invite", json={})).status_code == 401
    assert (await _invite(rd, PRACT, ORG, token="guess")).status_code == 401
    bad = await _invite(rd, "arzt", ORG)
    assert bad.status_code == 400
    assert bad.json()["errcode"] == "M_INVALID_PARAM"


async def test_fails_closed_when_the_directory_is_unreachable(rd: RdStack) -> None:
    rd.ctx.directory.base = "http://127.0.0.1:9"
    response = await _invite(rd, PRACT, ORG)
    assert response.status_code == 503


def test_decide_table() -> None:
    assert decide("none", "orgPract").allowed
    assert decide("orgPract", "pract").allowed
    assert not decide("org", "none").allowed


async def test_unusable_bodies_are_refused_naming_why(rd: RdStack) -> None:
    """The RD's JSON edge (``jsonio.read_json`` over ``core.jsonbody``): deep nesting is named
    as such, a body over the limit is 413 before it is parsed."""
    deep = b"[" * 20_000 + b"]" * 20_000
    answers = [
        await rd.api("POST", "/vzd/invite", PROXY_TOKEN, content=body)
        for body in (deep, b'{"invitingUser": ', b"[]", b"{" + b" " * 70_000 + b"}")
    ]
    assert [(a.status_code, a.json()["errcode"]) for a in answers] == [
        (400, "M_BAD_JSON"),
        (400, "M_BAD_JSON"),
        (400, "M_BAD_JSON"),
        (413, "M_TOO_LARGE"),
    ]
    assert answers[0].json()["error"] == "the request body is JSON nested deeper than 1024 levels"
    assert answers[1].json()["error"].startswith("the request body is not JSON: ")
    assert answers[2].json()["error"] == "the request body is not a JSON object (it is an array)"
