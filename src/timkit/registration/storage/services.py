"""Messenger-Services and their provisioning state (table ``services``, migration 2).

One row per domain. The row is the persisted state machine of
:mod:`timkit.registration.provisioning.state_machine`: ``state`` and ``step`` say where the service
is, ``attempts``/``error`` what went wrong last, ``next_attempt_ms`` when the worker may work
on it again. Every change goes through :func:`transition`, a compare-and-set on ``revision``:
a worker that loses a race with a request (a deprovision arriving mid-step) writes nothing
and re-reads the row.

A domain stays reserved by its row until the row is ``deleted`` (or ``failed``), so two
organisations can never hold the same domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from timkit.core.db import Cursor

_COLUMNS = (
    "domain, telematik_id, organisation, requested_by, state, step, attempts, error,"
    " client_url, federation_url, registered, revision, run_started_ms, step_started_ms,"
    " next_attempt_ms, created, updated"
)
_CHANGEABLE = frozenset(
    {
        "state",
        "step",
        "attempts",
        "error",
        "client_url",
        "federation_url",
        "registered",
        "run_started_ms",
        "step_started_ms",
        "next_attempt_ms",
        "requested_by",
        "organisation",
    }
)
RELEASED = ("deleted", "failed")
"""States in which a row no longer reserves its domain."""


@dataclass(frozen=True)
class Service:
    """One Messenger-Service row (see the module docstring)."""

    domain: str
    telematik_id: str
    organisation: str
    requested_by: str
    state: str
    step: str
    attempts: int
    error: str
    client_url: str
    federation_url: str
    registered: bool
    revision: int
    run_started_ms: int
    step_started_ms: int
    next_attempt_ms: int
    created: str
    updated: str


def _row(row: Sequence[Any]) -> Service:
    return Service(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        int(row[6]),
        row[7],
        row[8],
        row[9],
        bool(row[10]),
        int(row[11]),
        int(row[12]),
        int(row[13]),
        int(row[14]),
        row[15],
        row[16],
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def get(cur: Cursor, domain: str) -> Service | None:
    """The row of ``domain``, or None."""
    row = cur.execute(
        f"SELECT {_COLUMNS} FROM services WHERE domain = ?",  # noqa: S608 - constant columns
        (domain,),
    ).fetchone()
    return _row(row) if row else None


def of_organisation(cur: Cursor, telematik_id: str) -> list[Service]:
    """The organisation's services that are not deleted, by domain."""
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM services WHERE telematik_id = ? AND state <> 'deleted'"  # noqa: S608
        " ORDER BY domain",
        (telematik_id,),
    ).fetchall()
    return [_row(r) for r in rows]


def count_reserving(cur: Cursor, telematik_id: str) -> int:
    """How many of the organisation's rows still reserve a domain (not deleted or failed)."""
    row = cur.execute(
        "SELECT COUNT(*) FROM services WHERE telematik_id = ? AND state NOT IN (?, ?)",
        (telematik_id, *RELEASED),
    ).fetchone()
    return int(row[0])


def in_states(cur: Cursor, states: Sequence[str]) -> list[Service]:
    """Every row whose state is one of ``states``, by domain."""
    marks = ", ".join("?" for _ in states)
    rows = cur.execute(
        f"SELECT {_COLUMNS} FROM services WHERE state IN ({marks}) ORDER BY domain",  # noqa: S608
        tuple(states),
    ).fetchall()
    return [_row(r) for r in rows]


def insert(
    tx: Cursor,
    domain: str,
    telematik_id: str,
    organisation: str,
    requested_by: str,
    *,
    state: str,
    step: str,
    now_ms: int,
) -> None:
    """Insert a new row in ``state`` (the caller checked the domain is free)."""
    now = _now()
    fresh = _request(telematik_id, organisation, requested_by, state, step, now_ms)
    tx.execute(
        f"INSERT INTO services ({_COLUMNS}) VALUES"  # noqa: S608 - constant columns
        " (?, ?, ?, ?, ?, ?, 0, '', '', '', 0, 1, ?, ?, ?, ?, ?)",
        (domain, *fresh, now, now),
    )


def _request(
    telematik_id: str, organisation: str, requested_by: str, state: str, step: str, now_ms: int
) -> tuple[str | int, ...]:
    """The values a new request writes: who asked, where it starts, and when (``run_started_ms``,
    ``step_started_ms``, ``next_attempt_ms``), in column order."""
    return (telematik_id, organisation, requested_by, state, step, now_ms, now_ms, now_ms)


def reclaim(
    tx: Cursor,
    old: Service,
    telematik_id: str,
    organisation: str,
    requested_by: str,
    *,
    state: str,
    step: str,
    now_ms: int,
) -> bool:
    """Start over on a released row (deleted or failed) for a new request; CAS on revision."""
    fresh = _request(telematik_id, organisation, requested_by, state, step, now_ms)
    result = tx.execute(
        "UPDATE services SET telematik_id = ?, organisation = ?, requested_by = ?, state = ?,"
        " step = ?, attempts = 0, error = '', client_url = '', federation_url = '',"
        " registered = 0, revision = revision + 1, run_started_ms = ?, step_started_ms = ?,"
        " next_attempt_ms = ?, updated = ? WHERE domain = ? AND revision = ?",
        (*fresh, _now(), old.domain, old.revision),
    )
    return bool(result.rowcount)


def transition(tx: Cursor, service: Service, **changes: Any) -> bool:
    """Apply ``changes`` to ``service``'s row if nobody changed it since it was read.

    Returns:
        False (and nothing written) when the row's revision moved on or the row is gone.
    """
    unknown = set(changes) - _CHANGEABLE
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}")
    values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
    assignments = "".join(f"{name} = ?, " for name in changes)
    result = tx.execute(
        f"UPDATE services SET {assignments}revision = revision + 1, updated = ?"  # noqa: S608
        " WHERE domain = ? AND revision = ?",
        (*values, _now(), service.domain, service.revision),
    )
    return bool(result.rowcount)
