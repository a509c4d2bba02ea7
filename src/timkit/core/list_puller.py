"""The one puller of the signed federation list (AF_10064: ML-123891, ML-137902).

Two components hold the list they pull from their upstream: the Registrierungs-Dienst pulls
it from the VZD-FHIR-Directory and serves it to its proxies
(:class:`timkit.registration.list_cache.FederationCache`), the Messenger-Proxy pulls it
from its RD and answers the permission check's stage 1 from it
(:class:`timkit.proxy.list_gate.FederationGate`). Both adapt :class:`ListPuller`, which
owns what they share:

* **interval and kick**: :meth:`ListPuller.run` pulls, then waits the delay its adapter's
  :meth:`ListPuller.after_pull` names (its retry policy) or until :meth:`ListPuller.kick`;
* **strictly newer versions** (ML-123891): a received list is verified
  (:func:`timkit.core.federation_list.verify_list`: ``x5c`` path to the trust anchors, list
  signer role, signature, payload) and held only if its version is strictly greater than
  the held one and not below :attr:`ListPuller.floor`, the highest version ever accepted; an
  older or equal one is ignored with a warning;
* **"current" answers**: an upstream saying the held list is current (304) counts as a
  valid refresh;
* **TTL** (ML-137902): :meth:`ListPuller.expired` once ``ttl`` seconds passed since the last
  valid refresh, or without a list; the adapters fail closed on it;
* **the persisted last good list**: each adapter stores the JWS byte for byte
  (:meth:`ListPuller.store`, :meth:`ListPuller.store_refreshed`) and loads it back on start,
  re-verified (:meth:`ListPuller.verify_now`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from cryptography import x509

from timkit.core.errors import TimkitError
from timkit.core.federation_list import FederationList, load_anchors, verify_list
from timkit.core.lifecycle import wait_event

log = logging.getLogger(__name__)

VERSION_REQUIREMENT = "ML-123891"
"""A list is used only if its version is strictly newer than the held one."""
OUTDATED = "TIM_FEDERATION_LIST_OUTDATED"
"""The errcode of a list whose TTL passed ("veraltet")."""
MISSING = "TIM_FEDERATION_LIST_MISSING"
"""The errcode while no list was received yet."""


class PullSettings(Protocol):
    """What :class:`ListPuller` reads from its adapter's settings (read on every use, so a
    changed settings object takes effect at the next pull)."""

    @property
    def interval(self) -> float:
        """Seconds between scheduled pulls."""

    @property
    def retry_interval(self) -> float:
        """Seconds before a failed pull is retried."""

    @property
    def ttl(self) -> float:
        """Seconds after the last valid refresh when the list is outdated."""

    @property
    def sig_alg(self) -> str:
        """The JWS algorithm the list must be signed with."""

    @property
    def signer_role(self) -> str:
        """The role OID the signer's certificate must carry (ML-123677)."""


S = TypeVar("S", bound=PullSettings)


@dataclass(frozen=True)
class HeldList:
    """The list in use.

    Attributes:
        parsed: the verified list.
        jws: the compact JWS exactly as received.
        refreshed: epoch seconds of the last valid refresh (a new list, or "current").
    """

    parsed: FederationList
    jws: bytes
    refreshed: float

    @property
    def version(self) -> int:
        """The list's version."""
        return self.parsed.version


class ListPuller(ABC, Generic[S]):
    """Pulls, verifies and holds the federation list (see the module docstring).

    Args:
        settings: interval, retry interval, TTL, signature algorithm and signer role.
        clock: wall clock in epoch seconds (tests move it).
        name: the background task's name.

    Attributes:
        held: the list in use, or None.
        floor: the highest list version ever accepted: nothing older is used again.
    """

    def __init__(
        self, settings: S, *, clock: Callable[[], float] = time.time, name: str = "federation-list"
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.held: HeldList | None = None
        self.floor = 0
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._kicked = asyncio.Event()

    # -- what an adapter provides -----------------------------------------------------------

    @abstractmethod
    def anchor_paths(self) -> Sequence[Path]:
        """PEM files of the list signer's trust anchors (read on every verification)."""

    @abstractmethod
    async def fetch(self, held: HeldList | None) -> bytes | None:
        """Ask the upstream for a list newer than ``held``: its compact JWS, or None when the
        upstream confirms ``held`` as current (only when ``held`` is not None).

        Raises:
            TimkitError: the upstream failed or refused.
        """

    @abstractmethod
    async def store(self, candidate: HeldList) -> bool:
        """Persist a newly accepted list; False when it must not be held after all (another
        writer stored a newer one: the adapter then holds what it found)."""

    @abstractmethod
    async def store_refreshed(self, held: HeldList) -> None:
        """Persist that the upstream confirmed ``held`` as current at ``held.refreshed``."""

    @abstractmethod
    async def after_pull(self, error: TimkitError | None) -> float:
        """The retry policy: seconds until the next scheduled pull after a pull that
        succeeded (``error`` None) or failed with ``error``."""

    def pulling(self) -> AbstractAsyncContextManager[object]:
        """Context around each pull (raw-data measurement); none by default."""
        return contextlib.nullcontext()

    def refresh_time(self) -> float:
        """The time a refresh happens, as the adapter keeps it (default: the clock)."""
        return self.clock()

    def accepted(self, held: HeldList) -> None:
        """Called after a new list is held (metrics); nothing by default."""

    # -- verification and age --------------------------------------------------------------

    def verify_now(self, jws: bytes, now: float | None = None) -> FederationList:
        """``jws`` verified against the current anchors at ``now`` (default: the clock).

        Raises:
            ListVerificationError: the list, its signature or its signer is not acceptable.
        """
        return self._verify(jws, load_anchors(self.anchor_paths()), now)

    def _verify(
        self, jws: bytes, anchors: Sequence[x509.Certificate], now: float | None
    ) -> FederationList:
        when = datetime.fromtimestamp(self.clock() if now is None else now, UTC)
        return verify_list(
            jws,
            anchors,
            self.settings.sig_alg,
            now=when,
            signer_role=self.settings.signer_role,
        )

    def age(self) -> float:
        """Seconds since the last valid refresh (infinite without a list)."""
        return self.clock() - self.held.refreshed if self.held else float("inf")

    def expired(self) -> bool:
        """Whether there is no list or its TTL passed (fail closed on it)."""
        return self.age() > self.settings.ttl

    # -- pulling ----------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Pull once; whether a newer list is held now.

        Raises:
            TimkitError: the upstream failed or the list failed verification (the held list
                stays).
        """
        async with self.pulling():
            return await self._pull()

    async def _pull(self) -> bool:
        held = self.held
        jws = await self.fetch(held)
        now = self.refresh_time()
        if jws is None:
            if held is not None:
                confirmed = replace(held, refreshed=now)
                await self.store_refreshed(confirmed)
                self.held = confirmed
            return False
        anchors = await asyncio.to_thread(load_anchors, self.anchor_paths())
        parsed = self._verify(jws, anchors, now)
        if held is not None and parsed.version <= held.version:
            log.warning(
                "federation list version %d ignored: not newer than the held version %d (%s)",
                parsed.version,
                held.version,
                VERSION_REQUIREMENT,
            )
            return False
        if parsed.version < self.floor:
            log.warning(
                "federation list version %d ignored: older than version %d accepted before (%s)",
                parsed.version,
                self.floor,
                VERSION_REQUIREMENT,
            )
            return False
        candidate = HeldList(parsed, jws, now)
        if not await self.store(candidate):
            return False
        self.floor = max(self.floor, parsed.version)
        self.held = candidate
        self.accepted(candidate)
        log.info(
            "federation list version %d held (%d domains)", parsed.version, len(parsed.entries)
        )
        return True

    async def tick(self) -> float:
        """One scheduled pull; the seconds to wait before the next one (:meth:`after_pull`)."""
        try:
            await self.refresh()
        except TimkitError as e:
            return await self.after_pull(e)
        return await self.after_pull(None)

    async def run(self) -> None:
        """Pull forever (the background task): after each pull wait its delay or a kick."""
        while True:
            self._kicked.clear()
            delay = await self.tick()
            await wait_event(self._kicked, delay)

    def kick(self) -> None:
        """Pull now rather than at the next interval (a kick during a pull pulls once more)."""
        self._kicked.set()

    def start_pulling(self) -> None:
        """Start the background task."""
        self._task = asyncio.create_task(self.run(), name=self._name)

    async def stop_pulling(self) -> None:
        """Stop the background task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
