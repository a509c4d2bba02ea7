"""The pages' language catalogues and the error page in both languages."""

from __future__ import annotations

import json

from tests.registration.conftest import RdStack

from timkit.registration.web.i18n import CATALOGUES


async def test_catalogues_have_the_same_keys() -> None:
    de = json.loads((CATALOGUES / "de.json").read_text("utf-8"))
    en = json.loads((CATALOGUES / "en.json").read_text("utf-8"))
    assert set(de) == set(en)


async def test_error_page_in_both_languages(rd: RdStack) -> None:
    de = await rd.client.get(rd.url + "/oidc/callback?state=unknown&code=x")
    assert de.status_code == 401
    assert '<html lang="de">' in de.text
    assert "Das hat nicht geklappt" in de.text
    en = await rd.client.get(rd.url + "/oidc/callback?state=unknown&code=x&lang=en")
    assert '<html lang="en">' in en.text
    assert "That did not work" in en.text
    assert "ML-128758" in en.text
    rd.client.cookies.clear()
