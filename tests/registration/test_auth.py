"""Org-Admin sessions: the JSON API changes state only with the bearer token, not the cookie."""

from __future__ import annotations

from tests.registration.conftest import AdminSession


async def test_api_refuses_cookie_sessions_for_state_changes(admin_session: AdminSession) -> None:
    rd = admin_session.rd
    header = {"Cookie": f"__Host-rd-session={admin_session.token}"}
    read = await rd.client.get(rd.url + "/api/v1/account", headers=header)
    assert read.status_code == 200  # the frontend's polling
    write = await rd.client.post(rd.url + "/api/v1/invitations", headers=header)
    assert write.status_code == 401  # state changes need the bearer token
