"""The proxy's federation list (AF_10064: ML-123891, ML-137902; annex 8.2 of seed 002).

:class:`FederationGate` pulls the list from its Registrierungs-Dienst
(``GET /federation?version=<held>``, bearer token) every ``interval`` seconds (1 h) and
answers stage 1 of the permission check from it (:class:`timkit.proxy.domain_gate.DomainGate`):

* 200: the compact JWS is verified (:func:`timkit.core.federation_list.verify_list`: ``x5c``
  chain to the configured trust anchors, signature, payload) and used only if its version is
  strictly greater than the held one; an older or equal version is ignored with a warning.
* 304: the held list is current; that counts as a valid refresh.
* 503 ``TIM_FEDERATION_LIST_OUTDATED``: the RD's own list is outdated; the proxy blocks all
  federation traffic at once ("blockiere Kommunikation zu anderen Homeservern") and asks
  again after ``interval``.
* anything else: retried after ``retry_interval`` (sooner while no list is held yet).

The last good list is kept across restarts in ``state_file`` (the JWS byte for byte, the
time of its last valid refresh and ``highest_version``, the highest version ever accepted;
re-verified on load). That version is a floor (ML-123891): a list below it is never loaded
or accepted again, also when the proxy holds no list (a state file holding an older list
than one accepted before is ignored; the next pull must bring at least the floor).
``ttl`` seconds (72 h) after the last valid refresh, or without any list, every check
fails with 503 (fail closed) and :meth:`FederationGate.health` reports unhealthy. A domain
missing from the list may trigger one extra pull (at most every ``miss_refresh_interval``
seconds,
``MessengerService.adoc``: "im Rahmen der Föderationsprüfung, wenn eine Domain in der
aktuell vorliegenden Liste nicht enthalten ist"), so newly admitted services are reachable
without waiting for the hourly pull. Membership is a set lookup.

Pulling, verification, the version rule and the TTL are those of
:class:`timkit.core.list_puller.ListPuller`; this module adapts it to the RD's HTTP answers,
the state file and the proxy's retry policy. Concurrent pulls (the hourly one and a miss
refresh) share one pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from timkit.core.errors import TimkitError
from timkit.core.http import aiohttp_session
from timkit.core.list_puller import MISSING as MISSING
from timkit.core.list_puller import OUTDATED as OUTDATED
from timkit.core.list_puller import HeldList as HeldList
from timkit.core.list_puller import ListPuller
from timkit.core.rawdata import RawDataConfig, RawDataSink
from timkit.proxy.config import FederationListConfig
from timkit.proxy.domain_gate import not_in_federation
from timkit.proxy.metrics import ProxyMetrics

log = logging.getLogger(__name__)

REQUIREMENT = "ML-137902"
"""The list must be current: pulled hourly, used only while valid."""
USE_CASE = "AF_10064"
FIRST_RETRY = 1.0
"""Seconds before the first retry while no list is held (doubling up to retry_interval)."""


class FederationGate(ListPuller[FederationListConfig]):
    """Holds the verified federation list and answers stage-1 checks (module docstring).

    Args:
        settings: the ``federation_list`` config.
        metrics: where the list's version and age are exported.
        rawdata: where each pull is recorded as a run of AF_10064 (ML-132589).
        clock: wall clock in epoch seconds (tests move it).
    """

    def __init__(
        self,
        settings: FederationListConfig,
        metrics: ProxyMetrics | None = None,
        rawdata: RawDataSink | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, clock=clock)
        self.metrics = metrics or ProxyMetrics()
        self.rawdata = rawdata or RawDataSink(RawDataConfig(sink="off"))
        self.blocked = False
        self._session: aiohttp.ClientSession | None = None
        self._pull_lock = asyncio.Lock()
        self._last_miss_pull = float("-inf")
        self._first_retry = FIRST_RETRY
        self.metrics.list_age.set_function(self.age)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, *, background: bool = True) -> None:
        """Load the persisted list, then pull in the background (unless ``background`` is
        False: then only :meth:`refresh` and :meth:`recheck` pull)."""
        self.held, self.floor = self._load()
        self._publish()
        self._session = aiohttp_session(self.settings.ca_file, timeout=30.0, limit=4)
        if background:
            self.start_pulling()

    async def close(self) -> None:
        """Stop pulling."""
        await self.stop_pulling()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- checks -----------------------------------------------------------------------------

    def usable(self) -> HeldList:
        """The held list if it may be used.

        Raises:
            TimkitError: 503 when there is none, it is older than ``ttl``, or the RD
                reported its list outdated (fail closed).
        """
        held = self.held
        if held is None:
            raise TimkitError(
                503,
                MISSING,
                "no verified federation list yet: federation traffic is blocked",
                requirement=REQUIREMENT,
            )
        if self.blocked or self.expired():
            raise TimkitError(
                503,
                OUTDATED,
                f"federation list version {held.version} is outdated (no valid refresh for "
                f"{self.age():.0f} s, limit {self.settings.ttl:.0f} s): federation traffic "
                "is blocked",
                requirement=REQUIREMENT,
            )
        return held

    def check(self, domain: str, requirement: str) -> None:
        """See :meth:`timkit.proxy.domain_gate.DomainGate.check`."""
        if not self.usable().parsed.contains(domain):
            raise not_in_federation(domain, requirement)

    async def recheck(self, domain: str, requirement: str) -> None:
        """See :meth:`timkit.proxy.domain_gate.DomainGate.recheck`."""
        try:
            self.check(domain, requirement)
            return
        except TimkitError as e:
            if e.status != 403:
                raise
            now = time.monotonic()
            if now - self._last_miss_pull < self.settings.miss_refresh_interval:
                raise
            self._last_miss_pull = now
        log.info("%s not in federation list; pulling a fresh one", domain)
        with contextlib.suppress(TimkitError):
            await self.refresh()
        self.check(domain, requirement)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether federation traffic can flow, and the list's state for ``/health``."""
        held = self.held
        state: dict[str, Any] = {
            "federation_list_version": held.version if held else None,
            "federation_list_age": round(self.age(), 1) if held else None,
        }
        try:
            self.usable()
        except TimkitError as e:
            return False, {**state, "status": "unhealthy", "errcode": e.errcode, "error": e.message}
        return True, {**state, "status": "ok"}

    # -- the ListPuller adapter -------------------------------------------------------------

    def anchor_paths(self) -> tuple[Path, ...]:
        """``federation_list.trust_anchors``."""
        return self.settings.trust_anchors

    async def refresh(self) -> bool:
        """Pull once (concurrent callers share one pull); whether a newer list is held now.

        Raises:
            TimkitError: the RD failed or the list failed verification (the held list stays).
        """
        if self._pull_lock.locked():
            async with self._pull_lock:
                return False
        async with self._pull_lock:
            return await super().refresh()

    @contextlib.asynccontextmanager
    async def _measured(self) -> AsyncIterator[None]:
        async with self.rawdata.measure(USE_CASE, "proxy"):
            yield

    def pulling(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Each pull is a run of AF_10064 in the raw data (ML-132589)."""
        return self._measured()

    def _token(self) -> str | None:
        path = self.settings.token_file
        return path.read_text("utf-8").strip() if path is not None else None

    async def fetch(self, held: HeldList | None) -> bytes | None:
        """``GET <url>?version=<held>`` with the proxy's bearer token: the JWS of a 200,
        None for a 304; a 503 ``TIM_FEDERATION_LIST_OUTDATED`` blocks federation traffic.

        Raises:
            TimkitError: the RD is unreachable, reported its list outdated, or answered
                anything else.
        """
        assert self._session is not None, "start() first"
        params = {"version": str(held.version)} if held else {}
        headers = {}
        token = await asyncio.to_thread(self._token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._session.get(
                self.settings.url, params=params, headers=headers
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TimkitError(
                502, "TIMKIT_UPSTREAM", f"Registrierungs-Dienst unreachable: {e!r}"
            ) from e
        if status == 304 and held is not None:
            return None
        if status == 503 and _errcode(body) == OUTDATED:
            self.blocked = True
            log.error(
                "ALERT the Registrierungs-Dienst reports the federation list outdated;"
                " federation traffic is blocked (%s)",
                REQUIREMENT,
            )
            raise TimkitError(503, OUTDATED, "the RD's federation list is outdated")
        if status != 200:
            raise TimkitError(
                502,
                "TIMKIT_UPSTREAM",
                f"Registrierungs-Dienst answered {status} to the federation list request: "
                f"{body[:200]!r}",
            )
        return body

    async def store(self, candidate: HeldList) -> bool:
        """Write the new list to the state file (a failed write is logged; the list is used)."""
        await asyncio.to_thread(self._save_logged, candidate)
        return True

    async def store_refreshed(self, held: HeldList) -> None:
        """The RD confirmed the list (304): unblock and record the refresh."""
        self.blocked = False
        await asyncio.to_thread(self._save_logged, held)

    def accepted(self, held: HeldList) -> None:
        """A new list is in use: unblock and export its version."""
        self.blocked = False
        self._publish()

    async def after_pull(self, error: TimkitError | None) -> float:
        """``interval`` after a pull or an outdated answer; ``retry_interval`` after other
        failures, sooner (from :data:`FIRST_RETRY`, doubling) while no list is held."""
        if error is None:
            self._first_retry = FIRST_RETRY
            return self.settings.interval
        if error.errcode == OUTDATED:
            delay = self.settings.interval
        elif self.held is None:
            delay = min(self._first_retry, self.settings.retry_interval)
            self._first_retry *= 2
        else:
            delay = self.settings.retry_interval
        log.warning("federation list pull failed: %s (next in %.0f s)", error.describe(), delay)
        return delay

    # -- persistence ------------------------------------------------------------------------

    def _publish(self) -> None:
        self.metrics.list_version.set(self.held.version if self.held else -1)

    def _save_logged(self, held: HeldList) -> None:
        try:
            self._save(held)
        except OSError as e:
            log.error("federation list state %s not written: %s", self.settings.state_file, e)

    def _save(self, held: HeldList) -> None:
        path = self.settings.state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        state = {
            "jws": held.jws.decode("ascii"),
            "refreshed": held.refreshed,
            "highest_version": max(self.floor, held.version),
        }
        tmp.write_bytes(orjson.dumps(state))
        os.replace(tmp, path)

    def _load(self) -> tuple[HeldList | None, int]:
        """The persisted list if it still verifies and is not below the persisted floor, and
        the floor (the highest version ever accepted; 0 without a state file)."""
        path: Path = self.settings.state_file
        try:
            state = orjson.loads(path.read_bytes())
            jws = state["jws"].encode("ascii")
            refreshed = float(state["refreshed"])
            floor = state.get("highest_version", 0)
            if isinstance(floor, bool) or not isinstance(floor, int) or floor < 0:
                raise ValueError(f"highest_version {floor!r} is not a non-negative integer")
        except FileNotFoundError:
            return None, 0
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.error("federation list state %s unreadable, ignored: %s", path, e)
            return None, 0
        try:
            parsed = self.verify_now(jws)
        except TimkitError as e:
            log.error("federation list state %s no longer verifies, ignored: %s", path, e)
            return None, floor
        if parsed.version < floor:
            log.error(
                "federation list state %s holds version %d, older than version %d accepted"
                " before: ignored (ML-123891)",
                path,
                parsed.version,
                floor,
            )
            return None, floor
        log.info("federation list version %d loaded from %s", parsed.version, path)
        return HeldList(parsed, jws, refreshed), max(floor, parsed.version)


def _errcode(body: bytes) -> str | None:
    with contextlib.suppress(orjson.JSONDecodeError):
        document = orjson.loads(body)
        if isinstance(document, dict) and isinstance(document.get("errcode"), str):
            return str(document["errcode"])
    return None
