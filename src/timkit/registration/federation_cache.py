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
:mod:`timkit.registration.api.federation`):

* 200 with the compact JWS when ``N`` is absent or not the held version;
* 304 when ``N`` is the held version (the proxy's list is current: "aktuell");
* 503 ``TIM_FEDERATION_LIST_OUTDATED`` once ``federation.ttl`` seconds (72 h) passed since the
  last valid refresh ("veraltet": the proxies block federation traffic), and 503
  ``TIM_FEDERATION_LIST_MISSING`` before the first list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from timkit.core.db import Database
from timkit.core.errors import TimkitError
from timkit.core.federation_list import load_anchors, verify_list
from timkit.core.lifecycle import wait_event
from timkit.registration.config import FederationSettings, RegistrationConfig
from timkit.registration.directory_client import DirectoryClient
from timkit.registration.storage import federation_list
from timkit.registration.storage.federation_list import StoredList

log = logging.getLogger(__name__)

T = TypeVar("T")
REQUIREMENT = "ML-123891"
OUTDATED = "TIM_FEDERATION_LIST_OUTDATED"
MISSING = "TIM_FEDERATION_LIST_MISSING"


def trust_anchor_files(config: RegistrationConfig) -> tuple[Path, ...]:
    """``federation.trust_anchors``, or the local PKI's CA certificate when none are set."""
    return config.federation.trust_anchors or (config.pki_dir / "ca.crt",)


class FederationCache:
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
        self.db = db
        self.settings = settings
        self.directory = directory
        self.anchor_files = tuple(anchor_files)
        self.executor = executor
        self.clock = clock
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._kicked = asyncio.Event()
        with db.read() as cur:
            stored = federation_list.load(cur)
        self.floor = stored.version if stored else 0
        """The highest list version ever stored: no older list is accepted (ML-123891)."""
        self.held: StoredList | None = self._reverified(stored) if stored else None

    def _reverified(self, stored: StoredList) -> StoredList | None:
        """``stored`` if it still verifies and carries its stored version, else None."""
        try:
            parsed = verify_list(
                stored.jws,
                load_anchors(self.anchor_files),
                self.settings.sig_alg,
                now=datetime.fromtimestamp(self.clock(), UTC),
                signer_role=self.settings.signer_role,
            )
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
        return stored

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- pulling --------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Pull once; whether a newer list is now held.

        Raises:
            TimkitError: the directory failed, or the list failed verification.
        """
        held = self.held
        result = await self.directory.federation_list(
            held.version if held else None, self.settings.sig_alg
        )
        now_ms = self._now_ms()
        if result is None:
            if held is not None:
                await self._blocking(self._touch, held.version, now_ms)
                self.held = StoredList(held.version, held.jws, now_ms)
            return False
        _, jws = result
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        anchors = await self._blocking(load_anchors, self.anchor_files)
        version = verify_list(
            jws, anchors, self.settings.sig_alg, now=now, signer_role=self.settings.signer_role
        ).version
        if held is not None and version <= held.version:
            log.warning(
                "federation list version %d ignored: not newer than the held version %d (%s)",
                version,
                held.version,
                REQUIREMENT,
            )
            return False
        if version < self.floor:
            log.warning(
                "federation list version %d ignored: older than version %d stored before (%s)",
                version,
                self.floor,
                REQUIREMENT,
            )
            return False
        replace_equal = held is None  # a stored list of the floor's version that failed
        if await self._blocking(self._save, version, jws, now_ms, now.isoformat(), replace_equal):
            self.held = StoredList(version, jws, now_ms)
            self.floor = version
            log.info("federation list version %d held", version)
            return True
        with self.db.read() as cur:  # another writer was faster with a newer one
            stored = federation_list.load(cur)
        if stored is not None:
            self.floor = max(self.floor, stored.version)
            self.held = await self._blocking(self._reverified, stored)
        return False

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

    async def tick(self) -> float:
        """One scheduled pull; the seconds to wait before the next one.

        Success: ``interval``. Failure: ``retry_interval`` for the first ``retries`` retries;
        the failure after the last retry logs the alert and waits ``interval`` again.
        """
        try:
            await self.refresh()
        except TimkitError as e:
            self.failures += 1
            if self.failures > self.settings.retries:
                log.error(
                    "ALERT federation list: %d pulls from the VZD-FHIR-Directory failed (%s);"
                    " serving the last good list (version %s)",
                    self.failures,
                    e.describe(),
                    self.held.version if self.held else "none",
                )
                self.failures = 0
                return self.settings.interval
            log.warning("federation list pull failed (%d): %s", self.failures, e.describe())
            return self.settings.retry_interval
        self.failures = 0
        return self.settings.interval

    async def run(self) -> None:
        """Pull forever (the background task): after each pull wait its delay or a kick."""
        while True:
            self._kicked.clear()
            delay = await self.tick()
            await wait_event(self._kicked, delay)

    def kick(self) -> None:
        """Pull now rather than at the next interval (a kick during a pull pulls once more)."""
        self._kicked.set()

    def start(self) -> None:
        """Start the background task."""
        self._task = asyncio.create_task(self.run(), name="federation-list")

    async def stop(self) -> None:
        """Stop the background task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- serving --------------------------------------------------------------------------

    def serve(self, version: int | None) -> StoredList | None:
        """The list to send to a proxy holding ``version``, or None when it is current.

        Raises:
            TimkitError: 503 when there is no list yet or the list is outdated.
        """
        held = self.held
        if held is None:
            raise TimkitError(503, MISSING, "no federation list received from the directory yet")
        age = (self._now_ms() - held.refreshed_ms) / 1000
        if age > self.settings.ttl:
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
