"""State of the LDAP synchronisation (AF_10047) in the proxy database (migration 2).

* the **high-water mark**: the largest ``modifyTimestamp`` of the entries synchronised by the
  last successful run; the next run asks LDAP only for entries changed at or after it;
* a **lease**: several FHIR-Proxy instances may share one database; only the lease holder
  synchronises. A lease expires unless renewed, so another instance takes over when the
  holder stops;
* the **entries written**, by TelematikID, with their source (``ldap`` or ``seed``) and
  whether they are still present, so entries deleted from LDAP can be found.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from timkit.core.db import Cursor, Database
from timkit.fhirproxy.storage.audit import record


@dataclass(frozen=True)
class SyncState:
    """The single row of ``ldap_sync``."""

    high_water: str
    lease_holder: str
    lease_until: float
    runs: int
    last_run: str
    last_result: str


@dataclass(frozen=True)
class Written:
    """One entry whose base resources a batch wrote (or deactivated).

    Attributes:
        telematik_id: the entry.
        kind: ``smcb`` or ``hba``.
        present: False when the entry is gone from its source (resources deactivated).
        targets: ``Type/id`` of each resource written, for the audit log.
    """

    telematik_id: str
    kind: str
    present: bool
    targets: tuple[str, ...]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class LdapSyncStore:
    """The ``ldap_sync`` and ``ldap_entries`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def state(self) -> SyncState:
        """The current state."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT high_water, lease_holder, lease_until, runs, last_run, last_result"
                " FROM ldap_sync WHERE id = 1"
            ).fetchone()
        return SyncState(str(row[0]), str(row[1]), float(row[2]), int(row[3]), *row[4:])

    def acquire(self, holder: str, ttl: float) -> bool:
        """Take or renew the lease for ``ttl`` seconds; False when another holder has it."""
        now = time.time()
        with self.db.write() as tx:
            tx.execute(
                "UPDATE ldap_sync SET lease_holder = ?, lease_until = ?"
                " WHERE id = 1 AND (lease_holder = ? OR lease_holder = '' OR lease_until < ?)",
                (holder, now + ttl, holder, now),
            )
            return tx.rowcount == 1

    def release(self, holder: str) -> None:
        """Give the lease up (when ``holder`` has it)."""
        with self.db.write() as tx:
            tx.execute(
                "UPDATE ldap_sync SET lease_holder = '', lease_until = 0"
                " WHERE id = 1 AND lease_holder = ?",
                (holder,),
            )

    def finish(self, result: str, high_water: str | None = None) -> None:
        """Record a run's result; move the high-water mark only when given (a success)."""
        with self.db.write() as tx:
            if high_water is not None:
                tx.execute("UPDATE ldap_sync SET high_water = ? WHERE id = 1", (high_water,))
            tx.execute(
                "UPDATE ldap_sync SET runs = runs + 1, last_run = ?, last_result = ? WHERE id = 1",
                (_now(), result),
            )

    def present(self, source: str) -> set[str]:
        """TelematikIDs written from ``source`` and still present there at the last look."""
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT telematik_id FROM ldap_entries WHERE source = ? AND present = 1",
                (source,),
            ).fetchall()
        return {str(r[0]) for r in rows}

    def kinds(self, telematik_ids: Iterable[str]) -> dict[str, str]:
        """The recorded kind of each of ``telematik_ids`` that is known."""
        wanted = list(telematik_ids)
        found: dict[str, str] = {}
        with self.db.read() as cur:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = cur.execute(
                    f"SELECT telematik_id, kind FROM ldap_entries WHERE telematik_id IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                found.update((str(r[0]), str(r[1])) for r in rows)
        return found

    def written(
        self,
        source: str,
        actor: str,
        entries: Iterable[Written],
        statuses: Mapping[str, int] | None = None,
    ) -> None:
        """Record a committed batch: the entries' state and one audit row per resource.

        ``statuses`` gives the FHIR-Directory's status per ``Type/id`` written (default 200).
        """
        statuses = statuses or {}
        now = _now()
        with self.db.write() as tx:
            for entry in entries:
                _upsert(tx, entry, source, now)
                action = "PUT (ldap sync)" if entry.present else "PUT active=false (ldap sync)"
                for target in entry.targets:
                    status = statuses.get(target, 200)
                    record(tx, actor, action, target, status, f"telematikID {entry.telematik_id}")


def _upsert(tx: Cursor, entry: Written, source: str, now: str) -> None:
    tx.execute("DELETE FROM ldap_entries WHERE telematik_id = ?", (entry.telematik_id,))
    tx.execute(
        "INSERT INTO ldap_entries (telematik_id, source, kind, present, updated)"
        " VALUES (?, ?, ?, ?, ?)",
        (entry.telematik_id, source, entry.kind, int(entry.present), now),
    )
