"""The federation list for the RD's Messenger-Proxies (AF_10064: ML-123672, ML-123891).

Pulling (annex 8.2 of seed 002, ``UC_Update_Federationlist_Seq``): every
``federation.interval`` seconds (1 h) the RD asks the VZD-FHIR-Directory for a list newer than
the one it holds (``GET /tim-provider-services/FederationList/federationList.jws?version=``).
:meth:`FederationCache.kick` pulls at once instead: the RD's provisioning calls it after it
registered or removed a domain, so the list it serves holds its own services' domains
without waiting for the next interval.
A failed pull is retried every ``federation.retry_interval`` seconds (5 min); after
``federation.retries`` failed retries an alert is logged at ERROR level and the RD goes on
serving its last good list, pulling hourly again.

The pulling, verification, version rule and TTL are those of
:class:`timkit.core.list_puller.ListPuller`; this module adapts it to the directory, the
database and the RD's retry policy.

A received list is held only if

1. :func:`timkit.core.federation_list.verify_list` accepts it: its JWS header's ``x5c`` is
   a valid certificate path to one of ``federation.trust_anchors``, the signer is the
   federation list signer (a C.FD.SIG carrying ``federation.signer_role``, ML-123677) and
   the JWS signature verifies using ``federation.sig_alg``: a forged or re-signed list is
   never served;
2. its ``version`` is strictly greater than the held one (ML-123891) and not below
   :attr:`FederationCache.floor`, the highest version ever stored: a rolled-back list is
   ignored with a warning.

The JWS is kept byte-for-byte in the database, so a restarted RD serves it at once, after
verifying it again: a stored list that no longer verifies, or whose payload version is not
the stored version (the floor, which the store never lowers), is not served; the next
pull must bring a list of at least that version.

Serving (:meth:`FederationCache.serve`, behind ``GET /federation?version=N`` of
:mod:`timkit.registration.api.list_route`):

* 200 with the compact JWS when ``N`` is absent or not the held version;
* 304 when ``N`` is the held version (the proxy's list is current: "aktuell");
* 503 ``TIM_FEDERATION_LIST_OUTDATED`` once ``federation.ttl`` seconds (72 h) passed since the
  last valid refresh ("veraltet": the proxies block federation traffic), and 503
  ``TIM_FEDERATION_LIST_MISSING`` before the first list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from timkit.core.db import Database
from timkit.core.errors import TimkitError
from timkit.core.list_puller import MISSING as MISSING
from timkit.core.list_puller import OUTDATED as OUTDATED
from timkit.core.list_puller import HeldList, ListPuller
from timkit.registration.config import FederationSettings, RegistrationConfig
from timkit.registration.directory_client import DirectoryClient
from timkit.registration.storage import federation_list
from timkit.registration.storage.federation_list import StoredList

log = logging.getLogger(__name__)

T = TypeVar("T")
REQUIREMENT = "ML-123891"


def trust_anchor_files(config: RegistrationConfig) -> tuple[Path, ...]:
    """``federation.trust_anchors``, or the local PKI's CA certificate when none are set."""
    return config.federation.trust_anchors or (config.pki_dir / "ca.crt",)


class FederationCache(ListPuller[FederationSettings]):
    """Pulls, verifies, holds and serves the federation list (see the module docstring).

    Args:
        db: the RD database (migration 2).
        settings: ``federation`` settings.
        directory: the VZD-FHIR-Directory client.
        anchor_files: PEM files of the list signer's trust anchors (read on every pull).
        executor: threads for database calls.
        clock: wall clock in seconds, injectable for tests.
    """

    def __init__(
        self,
        db: Database,
        settings: FederationSettings,
        directory: DirectoryClient,
        anchor_files: Sequence[Path],
        *,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(settings, clock=clock)
        self.db = db
        self.directory = directory
        self.anchor_files = tuple(anchor_files)
        self.executor = executor
        self.failures = 0
        with db.read() as cur:
            stored = federation_list.load(cur)
        self.floor = stored.version if stored else 0
        """The highest list version ever stored: no older list is accepted (ML-123891)."""
        self.held = self._reverified(stored) if stored else None

    def anchor_paths(self) -> tuple[Path, ...]:
        """The list signer's trust anchors (``federation.trust_anchors`` or the local CA)."""
        return self.anchor_files

    def _reverified(self, stored: StoredList) -> HeldList | None:
        """``stored`` if it still verifies and carries its stored version, else None."""
        try:
            parsed = self.verify_now(stored.jws)
        except TimkitError as e:
            log.error(
                "stored federation list %d no longer verifies, not served: %s",
                stored.version,
                e.describe(),
            )
            return None
        if parsed.version != stored.version:
            log.error(
                "stored federation list claims version %d but holds version %d: not served (%s)",
                stored.version,
                parsed.version,
                REQUIREMENT,
            )
            return None
        return HeldList(parsed, stored.jws, stored.refreshed_ms / 1000)

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    # -- the ListPuller adapter -------------------------------------------------------------

    def refresh_time(self) -> float:
        """The clock in whole milliseconds, as the database keeps it."""
        return int(self.clock() * 1000) / 1000

    async def fetch(self, held: HeldList | None) -> bytes | None:
        """``GET /tim-provider-services/FederationList/federationList.jws?version=<held>``."""
        result = await self.directory.federation_list(
            held.version if held else None, self.settings.sig_alg
        )
        return None if result is None else result[1]

    async def store(self, candidate: HeldList) -> bool:
        """Save ``candidate`` unless another writer stored a newer list (then hold that)."""
        refreshed_ms = round(candidate.refreshed * 1000)
        received = datetime.fromtimestamp(refreshed_ms / 1000, UTC).isoformat()
        replace_equal = self.held is None  # a stored list of the floor's version that failed
        saved = await self._blocking(
            self._save, candidate.version, candidate.jws, refreshed_ms, received, replace_equal
        )
        if saved:
            return True
        with self.db.read() as cur:  # another writer was faster with a newer one
            stored = federation_list.load(cur)
        if stored is not None:
            self.floor = max(self.floor, stored.version)
            self.held = await self._blocking(self._reverified, stored)
        return False

    async def store_refreshed(self, held: HeldList) -> None:
        """Record that the directory confirmed the held list as current."""
        await self._blocking(self._touch, held.version, round(held.refreshed * 1000))

    def _touch(self, version: int, now_ms: int) -> None:
        with self.db.write() as tx:
            federation_list.touch(tx, version, now_ms)

    def _save(
        self, version: int, jws: bytes, now_ms: int, received: str, replace_equal: bool
    ) -> bool:
        with self.db.write() as tx:
            return federation_list.save(
                tx, version, jws, now_ms, received, replace_equal=replace_equal
            )

    async def after_pull(self, error: TimkitError | None) -> float:
        """Success: ``interval``. Failure: ``retry_interval`` for the first ``retries``
        retries; the failure after the last retry logs the alert and waits ``interval``."""
        if error is None:
            self.failures = 0
            return self.settings.interval
        self.failures += 1
        if self.failures > self.settings.retries:
            log.error(
                "ALERT federation list: %d pulls from the VZD-FHIR-Directory failed (%s);"
                " serving the last good list (version %s)",
                self.failures,
                error.describe(),
                self.held.version if self.held else "none",
            )
            self.failures = 0
            return self.settings.interval
        log.warning("federation list pull failed (%d): %s", self.failures, error.describe())
        return self.settings.retry_interval

    def start(self) -> None:
        """Start the background task."""
        self.start_pulling()

    async def stop(self) -> None:
        """Stop the background task."""
        await self.stop_pulling()

    # -- serving --------------------------------------------------------------------------

    def serve(self, version: int | None) -> HeldList | None:
        """The list to send to a proxy holding ``version``, or None when it is current.

        Raises:
            TimkitError: 503 when there is no list yet or the list is outdated.
        """
        held = self.held
        if held is None:
            raise TimkitError(503, MISSING, "no federation list received from the directory yet")
        if self.expired():
            age = self.age()
            log.error(
                "ALERT federation list outdated: last valid refresh %.0f s ago (ttl %.0f s)",
                age,
                self.settings.ttl,
            )
            raise TimkitError(
                503,
                OUTDATED,
                f"the federation list is outdated (veraltet): last valid refresh {age:.0f} s"
                f" ago, more than {self.settings.ttl:.0f} s",
                requirement=REQUIREMENT,
            )
        if version == held.version:
            return None
        return held
