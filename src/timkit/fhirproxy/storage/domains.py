"""TI-M domains registered by providers (``/tim-provider-services/federation``).

Each row of ``domains`` is one :class:`Domain`, owned by the provider (OAuth client id) that
registered it; that client id is the domain's ``timAnbieter`` in the federation list. The
``domain_iks`` table (migration 2) holds every IK of every insurance domain with the IK as
primary key, so an IK is unique list-wide even with several proxy instances writing.

Writes take the caller's transaction (``tx`` from :meth:`Database.write`) so a domain change
and the federation list it produces commit together (see :mod:`..federation`). The methods
here check nothing but existence and uniqueness; syntax and ownership rules live in
:mod:`timkit.fhirproxy.handlers.signed_list`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from timkit.core.db import Cursor, Database

_COLUMNS = "domain, client_id, telematik_id, is_insurance, ik, redirect_domains"


@dataclass(frozen=True)
class Domain:
    """One TI-M domain of the federation (the API's ``Domain``, already validated).

    Attributes:
        domain: the Matrix server name, lower case.
        telematik_id: TelematikID of the organisation using the domain.
        is_insurance: whether it is a health insurance's domain for insured persons.
        ik: the insurance's IKs (9-digit strings); empty unless ``is_insurance``.
        tim_anbieter: the provider (client id) that registered it.
        redirect_domains: redirect domains the VZD's proxy has to allow.
    """

    domain: str
    telematik_id: str
    is_insurance: bool = False
    ik: tuple[str, ...] = ()
    tim_anbieter: str = ""
    redirect_domains: tuple[str, ...] = field(default=())

    def to_api(self) -> dict[str, Any]:
        """The ``Domain`` object of the REST API (``ik`` only when there are IKs)."""
        body: dict[str, Any] = {
            "domain": self.domain,
            "telematikID": self.telematik_id,
            "isInsurance": self.is_insurance,
        }
        if self.ik:
            body["ik"] = list(self.ik)
        body["timAnbieter"] = self.tim_anbieter
        body["redirectDomains"] = list(self.redirect_domains)
        return body


def _row_to_domain(row: Sequence[Any]) -> Domain:
    return Domain(
        domain=row[0],
        tim_anbieter=row[1],
        telematik_id=row[2],
        is_insurance=bool(row[3]),
        ik=tuple(orjson.loads(row[4])),
        redirect_domains=tuple(orjson.loads(row[5])),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DomainStore:
    """The ``domains`` and ``domain_iks`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def contains(self, domain: str) -> bool:
        """Whether ``domain`` is a registered TI-M domain (so in the federation list)."""
        with self.db.read() as cur:
            row = cur.execute("SELECT 1 FROM domains WHERE domain = ?", (domain.lower(),))
            return row.fetchone() is not None

    def provider_has_telematik_id(self, client_id: str, telematik_id: str) -> bool:
        """Whether provider ``client_id`` registered a domain for ``telematik_id``."""
        with self.db.read() as cur:
            row = cur.execute(
                "SELECT 1 FROM domains WHERE client_id = ? AND telematik_id = ?",
                (client_id, telematik_id),
            )
            return row.fetchone() is not None

    def names_of_telematik_id(self, telematik_id: str) -> set[str]:
        """The domains registered for ``telematik_id`` (by any provider)."""
        with self.db.read() as cur:
            rows = cur.execute(
                "SELECT domain FROM domains WHERE telematik_id = ?", (telematik_id,)
            ).fetchall()
        return {str(r[0]) for r in rows}

    def get(self, domain: str, tx: Cursor | None = None) -> Domain | None:
        """The domain ``domain`` (any case), or None; read inside ``tx`` when given."""
        sql = f"SELECT {_COLUMNS} FROM domains WHERE domain = ?"  # noqa: S608 - constant columns
        if tx is not None:
            row = tx.execute(sql, (domain.lower(),)).fetchone()
        else:
            with self.db.read() as cur:
                row = cur.execute(sql, (domain.lower(),)).fetchone()
        return _row_to_domain(row) if row else None

    def of_provider(self, client_id: str) -> list[Domain]:
        """Every domain provider ``client_id`` registered, by name."""
        with self.db.read() as cur:
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM domains WHERE client_id = ? ORDER BY domain",  # noqa: S608
                (client_id,),
            ).fetchall()
        return [_row_to_domain(r) for r in rows]

    def all(self, tx: Cursor | None = None) -> list[Domain]:
        """Every domain, by name (inside ``tx`` when given)."""
        sql = f"SELECT {_COLUMNS} FROM domains ORDER BY domain"  # noqa: S608 - constant columns
        if tx is not None:
            return [_row_to_domain(r) for r in tx.execute(sql).fetchall()]
        with self.db.read() as cur:
            return [_row_to_domain(r) for r in cur.execute(sql).fetchall()]

    @staticmethod
    def list_rows(tx: Cursor) -> list[tuple[Any, ...]]:
        """``(domain, telematik_id, is_insurance, ik_json, client_id)`` of every domain, by name.

        The one query behind federation list generation: no per-row objects.
        """
        return [
            tuple(r)
            for r in tx.execute(
                "SELECT domain, telematik_id, is_insurance, ik, client_id FROM domains"
                " ORDER BY domain"
            ).fetchall()
        ]

    @staticmethod
    def ik_holders(tx: Cursor, iks: Iterable[str], *, except_domain: str = "") -> dict[str, str]:
        """Which domain (other than ``except_domain``) already holds each of ``iks``."""
        held: dict[str, str] = {}
        for ik in iks:
            row = tx.execute("SELECT domain FROM domain_iks WHERE ik = ?", (ik,)).fetchone()
            if row is not None and row[0] != except_domain:
                held[ik] = row[0]
        return held

    @staticmethod
    def insert(tx: Cursor, domain: Domain) -> None:
        """Insert ``domain`` and its IKs (the caller checked it does not exist)."""
        now = _now()
        tx.execute(
            "INSERT INTO domains (domain, client_id, telematik_id, is_insurance, ik,"
            " redirect_domains, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                domain.domain,
                domain.tim_anbieter,
                domain.telematik_id,
                1 if domain.is_insurance else 0,
                orjson.dumps(list(domain.ik)).decode(),
                orjson.dumps(list(domain.redirect_domains)).decode(),
                now,
                now,
            ),
        )
        DomainStore._insert_iks(tx, domain)

    @staticmethod
    def update(tx: Cursor, domain: Domain) -> None:
        """Replace the stored attributes of ``domain`` (owner unchanged) and its IKs."""
        tx.execute(
            "UPDATE domains SET telematik_id = ?, is_insurance = ?, ik = ?, redirect_domains = ?,"
            " updated = ? WHERE domain = ?",
            (
                domain.telematik_id,
                1 if domain.is_insurance else 0,
                orjson.dumps(list(domain.ik)).decode(),
                orjson.dumps(list(domain.redirect_domains)).decode(),
                _now(),
                domain.domain,
            ),
        )
        tx.execute("DELETE FROM domain_iks WHERE domain = ?", (domain.domain,))
        DomainStore._insert_iks(tx, domain)

    @staticmethod
    def delete(tx: Cursor, name: str) -> bool:
        """Delete domain ``name`` and its IKs; whether it existed."""
        tx.execute("DELETE FROM domain_iks WHERE domain = ?", (name,))
        return bool(tx.execute("DELETE FROM domains WHERE domain = ?", (name,)).rowcount)

    @staticmethod
    def _insert_iks(tx: Cursor, domain: Domain) -> None:
        if domain.ik:
            tx.executemany(
                "INSERT INTO domain_iks (ik, domain) VALUES (?, ?)",
                [(ik, domain.domain) for ik in domain.ik],
            )
