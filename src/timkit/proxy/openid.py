"""Checking Matrix OpenID tokens at the proxy's own homeserver (Freigabeliste auth).

A TI-M client authenticates at I_TiMessengerContactManagement with an OpenID token its
homeserver issued (``POST /_matrix/client/v3/user/{userId}/openid/request_token``). The
proxy sits in front of that homeserver, so it asks it directly, on the loopback upstream::

    GET {upstream}/_matrix/federation/v1/openid/userinfo?access_token=<token>
    200 {"sub": "@alice:praxis.example"}

The Freigabeliste is per Messenger-Service (seed 002 §4.3.3.1.3), so ``sub`` must be a user
of ``server_name``. Confirmed tokens are trusted for ``cache_seconds`` (a bounded cache keyed
by the token's SHA-256, never the token itself). Everything else fails closed:

* no or a malformed token, or the homeserver rejects it: 401 ``M_UNKNOWN_TOKEN``;
* the token belongs to a user of another server: 403 ``M_FORBIDDEN``;
* the homeserver cannot be reached, fails or answers nonsense: 502 (:class:`UpstreamError`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import aiohttp
import orjson

from timkit.core.errors import Codes, TimkitError, UpstreamError
from timkit.core.http import aiohttp_session
from timkit.core.web import read_stream

log = logging.getLogger(__name__)

USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"
MAX_CACHED = 10_000
"""Most confirmed tokens kept; the oldest is dropped first."""
MAX_TOKEN_LENGTH = 4096
MAX_BODY = 64 * 1024


def _unknown_token(message: str) -> TimkitError:
    return TimkitError(401, Codes.UNKNOWN_TOKEN, message)


def _well_formed(token: str) -> bool:
    """Printable ASCII without spaces, of sensible length (Synapse issues URL-safe tokens)."""
    return (
        0 < len(token) <= MAX_TOKEN_LENGTH
        and token.isascii()
        and token.isprintable()
        and (" " not in token)
    )


def user_of_server(sub: str, server_name: str) -> bool:
    """Whether ``sub`` is a user id ``@localpart:<server_name>`` (server name case-blind)."""
    localpart, sep, server = sub.partition(":")
    return (
        bool(sep)
        and localpart.startswith("@")
        and len(localpart) > 1
        and server.lower() == server_name.lower()
    )


class OpenIdValidator:
    """Validates Matrix OpenID tokens at the homeserver behind the proxy.

    Args:
        upstream_url: the homeserver's loopback listener, e.g. ``http://127.0.0.1:8008``.
        server_name: the Messenger-Service's server name; only its users are accepted.
        cache_seconds: how long a confirmed token is trusted without asking again (0 = never).
        session: the HTTP session to use; None creates one of its own (closed by :meth:`close`).
        timeout: seconds the userinfo request may take in total.
        max_cached: most confirmed tokens kept.
        clock: monotonic seconds, for the cache.
    """

    def __init__(
        self,
        upstream_url: str,
        server_name: str,
        cache_seconds: float,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout: float = 10.0,
        max_cached: int = MAX_CACHED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = upstream_url.rstrip("/") + USERINFO_PATH
        self.server_name = server_name
        self._cache_seconds = cache_seconds
        self._session = session
        self._own_session = session is None
        self._timeout = timeout
        self._max_cached = max_cached
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, str]] = OrderedDict()

    async def close(self) -> None:
        """Close the HTTP session if this validator created it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def validate(self, token: str) -> str:
        """The user id of the homeserver user ``token`` was issued to.

        Raises:
            TimkitError: 401 ``M_UNKNOWN_TOKEN`` for a malformed, unknown or expired token;
                403 ``M_FORBIDDEN`` for a user of another server.
            UpstreamError: 502 when the homeserver cannot give a verdict.
        """
        if not _well_formed(token):
            raise _unknown_token("the OpenID token is malformed")
        key = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._cache.get(key)
        now = self._clock()
        if cached is not None:
            if cached[0] > now:
                return cached[1]
            del self._cache[key]
        sub = await self._userinfo(token)
        if not user_of_server(sub, self.server_name):
            log.warning("OpenID token of %s refused: not a user of %s", sub, self.server_name)
            raise TimkitError(
                403,
                Codes.FORBIDDEN,
                f"{sub} is not a user of {self.server_name}; the Freigabeliste of this "
                "Messenger-Service serves its own users only",
            )
        if self._cache_seconds > 0:
            self._remember(key, now + self._cache_seconds, sub)
        return sub

    def _remember(self, key: bytes, expires: float, sub: str) -> None:
        self._cache[key] = (expires, sub)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp_session(timeout=self._timeout)
        return self._session

    async def _userinfo(self, token: str) -> str:
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._http().get(
                    self._url,
                    params={"access_token": token},
                    allow_redirects=False,
                    headers={"Accept-Encoding": "identity"},
                ) as response,
            ):
                status = response.status
                body = await read_stream(response.content, MAX_BODY)
        except TimeoutError as e:
            raise UpstreamError(
                f"the homeserver did not answer the userinfo request within {self._timeout} s"
            ) from e
        except (aiohttp.ClientError, OSError) as e:
            raise UpstreamError(f"the homeserver is unreachable: {type(e).__name__}") from e
        except ValueError as e:
            raise UpstreamError("the homeserver's userinfo answer is too large") from e
        if status in (401, 403, 404):
            raise _unknown_token("the homeserver does not know this OpenID token")
        if status != 200:
            raise UpstreamError(f"the homeserver answered the userinfo request with {status}")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise UpstreamError("the homeserver's userinfo answer is no JSON") from e
        sub = document.get("sub") if isinstance(document, dict) else None
        if not isinstance(sub, str) or not sub:
            raise UpstreamError("the homeserver's userinfo answer holds no user id")
        return sub
