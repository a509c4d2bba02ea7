"""Logged-in users of the local federation for end-to-end tests (matrix-nio + raw HTTP)."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any
from urllib.parse import quote

import httpx
from nio import AsyncClient, LoginResponse

from tests.support.federation import Federation

A = "praxis-sonnenschein.tim.test"
B = "klinikum-nord.tim.test"
PASSWORD = "correct horse battery staple"
CONTACTS = "/tim-contact-mgmt/v1.0.2"


class User:
    """A logged-in user with a matrix-nio client and a raw HTTP client for the same URL."""

    def __init__(self, federation: Federation, domain: str, localpart: str) -> None:
        self.federation = federation
        self.domain = domain
        self.url = federation.client_url(domain)
        self.mxid = federation.add_user(domain, localpart, PASSWORD)
        self.ssl = ssl.create_default_context(cafile=federation.ca_cert)
        self.nio = AsyncClient(self.url, self.mxid, ssl=self.ssl)
        self.http = httpx.AsyncClient(base_url=self.url, verify=self.ssl, timeout=30)

    async def login(self) -> User:
        response = await self.nio.login(PASSWORD)
        assert isinstance(response, LoginResponse), response
        return self

    async def close(self) -> None:
        await asyncio.gather(self.nio.close(), self.http.aclose())

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.nio.access_token}"}

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.auth())

    async def create_room(self, **body: Any) -> httpx.Response:
        return await self.post("/_matrix/client/v3/createRoom", body)

    async def invite(self, room_id: str, user_id: str) -> httpx.Response:
        return await self.post(
            f"/_matrix/client/v3/rooms/{quote(room_id)}/invite", {"user_id": user_id}
        )

    async def openid_token(self) -> str:
        response = await self.post(
            f"/_matrix/client/v3/user/{quote(self.mxid)}/openid/request_token", {}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def allow(self, inviter: str, start: int | None = None, end: int | None = None) -> None:
        """Put ``inviter`` on this user's Freigabeliste (I_TiMessengerContactManagement)."""
        settings: dict[str, int] = {"start": start if start is not None else int(time.time()) - 60}
        if end is not None:
            settings["end"] = end
        token = await self.openid_token()
        response = await self.http.post(
            f"{CONTACTS}/contacts",
            json={"displayName": inviter, "mxid": inviter, "inviteSettings": settings},
            headers={"Authorization": f"Bearer {token}", "Mxid": self.mxid},
        )
        assert response.status_code == 200, response.text
