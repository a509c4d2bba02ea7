"""Stage 3 of the permission check, asked at the Registrierungs-Dienst (seed 002 §3.5.2.3).

``POST <invite_check.url> {"invitingUser", "invitedUser"}`` with the proxies' bearer token
answers 200 ``{"allowed": true, "rule"}`` or 403 with the reason. Anything else (the RD or the
directory behind it unreachable, a time-out) is an error: the caller refuses the invite.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
import orjson

from timkit.core.errors import Codes, TimkitError
from timkit.core.http import aiohttp_session
from timkit.proxy.config import InviteCheckConfig


@dataclass(frozen=True)
class Verdict:
    """The RD's stage-3 answer: allowed or not, and why."""

    allowed: bool
    reason: str


class InviteCheck:
    """Client of the RD's ``/vzd/invite``."""

    def __init__(self, settings: InviteCheckConfig) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        self._session = aiohttp_session(
            self.settings.ca_file, timeout=self.settings.timeout, limit=16
        )

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _token(self) -> str | None:
        path = self.settings.token_file
        return path.read_text("utf-8").strip() if path is not None else None

    async def ask(self, inviting: str, invited: str) -> Verdict:
        """The RD's verdict on ``inviting`` inviting ``invited``.

        Raises:
            TimkitError: 502 when no verdict could be obtained (the invite must be refused).
        """
        assert self._session is not None, "start() first"
        headers = {"Content-Type": "application/json"}
        token = await asyncio.to_thread(self._token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = orjson.dumps({"invitingUser": inviting, "invitedUser": invited})
        try:
            async with self._session.post(self.settings.url, data=body, headers=headers) as r:
                status, answer = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TimkitError(
                502, Codes.UPSTREAM, f"stage 3 could not be checked: RD unreachable ({e!r})"
            ) from e
        document: object = None
        with contextlib.suppress(orjson.JSONDecodeError):
            document = orjson.loads(answer)
        details = document if isinstance(document, dict) else {}
        if status == 200 and details.get("allowed") is True:
            return Verdict(True, str(details.get("rule", "")))
        if status == 403:
            return Verdict(False, str(details.get("error", "the directory check refused it")))
        raise TimkitError(
            502,
            Codes.UPSTREAM,
            f"stage 3 could not be checked: RD answered {status} {answer[:200]!r}",
        )
