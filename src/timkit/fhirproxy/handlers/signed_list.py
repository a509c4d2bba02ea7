"""TI-M domains and the signed federation list they make up (seed 003 §5.2.3, ML-123677).

Rules for a ``Domain`` (I_VZD_TIM_Provider_Services 1.4.0 and ``FHIR_VZD_HOWTO_Provider``):

* ``domain``: a DNS name of at least two labels, no port (compared and stored lower case);
* ``telematikID``: a non-empty printable string without blanks or ``, | \\ $``;
* ``isInsurance``: a boolean (required);
* ``ik``: 9 digits starting with 10, 16 or 95 whose 9th digit is the GKV check digit
  (:func:`ik_check_digit`); at least one when ``isInsurance``, none otherwise; unique in
  the request and in the whole list (else 409);
* ``redirectDomains``: DNS names as ``domain``;
* ``timAnbieter`` is read-only: always the registering provider's client id.

Every change of a domain regenerates the list **in the same write transaction**
(:class:`Federation`): ``version`` = highest stored version + 1 (the highest row is never
pruned, so versions are strictly increasing and never reused), payload
``{"version", "domainList": [{domain, telematikID, isInsurance, ik, timAnbieter}]}`` by
domain name, signed twice as compact JWS with header ``{"alg", "typ": "JWT", "x5c"}``:
``BP256R1`` (brainpoolP256r1, gematik's default) and ``ES256`` (P-256). Rows hold the payload
bytes and each signature as a detached JWS (RFC 7515 Appendix F, ``header..signature``); the
served JWS is reassembled byte-for-byte from them. On PostgreSQL the transaction first locks
``federation_lists``, on SQLite ``BEGIN IMMEDIATE`` does, so several proxy instances on one
database serialise their changes and all serve the list with the highest version.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core import jwt
from timkit.core.certpath import OID_VZD_TI, admission_roles
from timkit.core.db import Cursor, Database
from timkit.core.errors import IssueType, TimkitError
from timkit.core.federation_list import (
    FederationList,
    FederationListError,
    ListEntry,
    parse_federation_list,
)
from timkit.core.signers import Signer, load_signer
from timkit.core.tls import FEDERATION_LIST_SIGNER, RENEW_BEFORE
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.storage.domains import Domain, DomainStore

__all__ = [
    "Domain",
    "Federation",
    "FederationList",
    "FederationListError",
    "ListEntry",
    "SigAlg",
    "SignedList",
    "check_domain_name",
    "check_ik",
    "current_list",
    "ik_check_digit",
    "parse_domain",
    "parse_federation_list",
    "regenerate",
]

log = logging.getLogger(__name__)

AF_DOMAINS = "AF_10048"
"""Requirement named in rejections of domain changes."""

_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$"
)
_TELEMATIK_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_TELEMATIK_ID_FORBIDDEN = frozenset(",|\\$")
_IK = re.compile(r"^(10|16|95)[0-9]{7}$")
_MAX_REDIRECTS = 100


class SigAlg(StrEnum):
    """Signature algorithms of the federation list (``sigAlg`` query parameter)."""

    BP256R1 = "BP256R1"
    ES256 = "ES256"


# ---------------------------------------------------------------------------------------------
# Domain validation


def check_domain_name(value: object) -> str:
    """``value`` as a lower-case TI-M domain (DNS name, two labels or more, no port).

    Raises:
        ValueError: naming what is wrong.
    """
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    name = value.lower()
    if ":" in name:
        raise ValueError(f"{value!r} must not carry a port")
    if not _DNS_NAME.match(name):
        raise ValueError(f"{value!r} is not a DNS name like 'praxis.example.de'")
    return name


def ik_check_digit(ik: str) -> int:
    """The check digit of an IK (GKV Gemeinsames Rundschreiben IK, chapter 1.2.5).

    Digits 3 to 8 (the classification is left out) are weighted 2, 1, 2, 1, 2, 1 from the
    left, the digit sums of the products are added, and the sum modulo 10 is the check
    digit: ``26032682`` → 0·2, 3·1, 2·2, 6·1, 8·2 (16 → 7), 2·1 → 22 → check digit 2.

    Args:
        ik: at least the first 8 digits of the IK.
    """
    total = 0
    for position, char in enumerate(ik[2:8]):
        product = int(char) * (2 if position % 2 == 0 else 1)
        total += product // 10 + product % 10
    return total % 10


def check_ik(value: object) -> str:
    """``value`` as a valid IK string (integers are accepted, as the HOWTO sends them).

    Raises:
        ValueError: for anything but 9 digits starting 10/16/95 with a correct check digit.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{value!r} is not a string of 9 digits")
    ik = str(value)
    if not _IK.match(ik):
        raise ValueError(f"{ik!r} must be 9 digits starting with 10, 16 or 95")
    if int(ik[8]) != ik_check_digit(ik):
        raise ValueError(f"{ik!r} has a wrong check digit (expected {ik_check_digit(ik)})")
    return ik


def _telematik_id(value: object) -> str:
    if not isinstance(value, str) or not _TELEMATIK_ID.match(value):
        raise ValueError("must be 1 to 128 printable characters without blanks")
    if _TELEMATIK_ID_FORBIDDEN & set(value):
        raise ValueError("must not contain ',', '|', '\\' or '$'")
    return value


def _error(status: int, code: str, message: str, errors: list[dict[str, str]]) -> TimkitError:
    return TimkitError(status, code, message, requirement=AF_DOMAINS, extra={"errors": errors})


def _iks(raw: object, errors: list[dict[str, str]]) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.append({"attributeName": "ik", "attributeError": "must be an array of IKs"})
        return []
    iks = []
    for item in raw:
        try:
            iks.append(check_ik(item))
        except ValueError as e:
            errors.append({"attributeName": "ik", "attributeError": str(e)})
    return iks


def _redirects(raw: object, errors: list[dict[str, str]]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > _MAX_REDIRECTS:
        message = f"must be an array of at most {_MAX_REDIRECTS} domains"
        errors.append({"attributeName": "redirectDomains", "attributeError": message})
        return ()
    names: dict[str, None] = {}
    for item in raw:
        try:
            names[check_domain_name(item)] = None
        except ValueError as e:
            errors.append({"attributeName": "redirectDomains", "attributeError": str(e)})
    return tuple(names)


def parse_domain(body: object, *, owner: str) -> Domain:
    """Validate a ``Domain`` request body sent by provider ``owner``.

    ``timAnbieter`` in the body is ignored (read-only) and set to ``owner``; unknown
    attributes are ignored; ``null`` counts as absent.

    Raises:
        TimkitError: 400 listing every invalid attribute (VZD ``errors``); 409 when the
            request repeats an IK.
    """
    if not isinstance(body, dict):
        raise _error(400, IssueType.INVALID, "the request body must be a Domain object", [])
    errors: list[dict[str, str]] = []
    domain = telematik_id = ""
    try:
        domain = check_domain_name(body.get("domain"))
    except ValueError as e:
        errors.append({"attributeName": "domain", "attributeError": str(e)})
    try:
        telematik_id = _telematik_id(body.get("telematikID"))
    except ValueError as e:
        errors.append({"attributeName": "telematikID", "attributeError": str(e)})
    is_insurance = body.get("isInsurance")
    if not isinstance(is_insurance, bool):
        errors.append({"attributeName": "isInsurance", "attributeError": "must be true or false"})
    iks = _iks(body.get("ik"), errors)
    if is_insurance is True and not iks and "ik" not in {e["attributeName"] for e in errors}:
        errors.append({"attributeName": "ik", "attributeError": "required when isInsurance"})
    if is_insurance is False and iks:
        errors.append(
            {"attributeName": "ik", "attributeError": "must not be set unless isInsurance"}
        )
    redirects = _redirects(body.get("redirectDomains"), errors)
    if errors:
        raise _error(400, IssueType.INVALID, "invalid Domain", errors)
    repeated = sorted({ik for ik in iks if iks.count(ik) > 1})
    if repeated:
        raise _error(
            409,
            IssueType.CONFLICT,
            f"IK {', '.join(repeated)} appears more than once in the request",
            [{"attributeName": "ik", "attributeError": f"duplicate IK {ik}"} for ik in repeated],
        )
    return Domain(domain, telematik_id, bool(is_insurance), tuple(iks), owner, redirects)


# ---------------------------------------------------------------------------------------------
# Generating, signing and storing federation lists


@dataclass
class SignedList:
    """One stored federation list version with both signatures.

    Attributes:
        version: the list's version.
        payload: the signed payload bytes, exactly as stored.
        detached: per algorithm, the detached compact JWS ``header..signature``.
    """

    version: int
    payload: bytes
    detached: dict[SigAlg, str]
    _compact: dict[SigAlg, bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def jws(self, alg: SigAlg = SigAlg.BP256R1) -> bytes:
        """The compact JWS (``header.payload.signature``) signed with ``alg``."""
        with self._lock:
            token = self._compact.get(alg)
            if token is None:
                header, _, signature = self.detached[alg].partition("..")
                token = f"{header}.{jwt.b64url(self.payload)}.{signature}".encode()
                self._compact[alg] = token
            return token

    def parsed(self) -> FederationList:
        """The payload, parsed."""
        return parse_federation_list(self.payload)


def build_payload(version: int, rows: Iterable[tuple[Any, ...]]) -> bytes:
    """The list payload from ``(domain, telematik_id, is_insurance, ik_json, client_id)`` rows."""
    entries = [
        {
            "domain": row[0],
            "telematikID": row[1],
            "isInsurance": bool(row[2]),
            "ik": orjson.loads(row[3]),
            "timAnbieter": row[4],
        }
        for row in rows
    ]
    return orjson.dumps({"version": version, "domainList": entries})


def sign_detached(payload: bytes, signer: Signer) -> str:
    """A detached compact JWS (``header..signature``) over ``payload`` with ``x5c``."""
    header, _, signature = jwt.sign(payload, signer.key, typ="JWT", x5c=signer.x5c()).split(".")
    return f"{header}..{signature}"


def load_list_signers(config: FhirProxyConfig) -> dict[SigAlg, Signer]:
    """The two federation list signers (configured, or issued by the local PKI)."""
    return {
        SigAlg.BP256R1: load_signer(
            config.federation_signer,
            config.pki_dir,
            name="fhir-proxy-federation-list-bp256r1",
            common_name="VZD-FHIR-FList-Signer",
            curve=ec.BrainpoolP256R1(),
            path="federation_signer",
            role=FEDERATION_LIST_SIGNER,
        ),
        SigAlg.ES256: load_signer(
            config.federation_signer_es256,
            config.pki_dir,
            name="fhir-proxy-federation-list-es256",
            common_name="VZD-FHIR-FList-Signer ES256",
            curve=ec.SECP256R1(),
            path="federation_signer_es256",
            role=FEDERATION_LIST_SIGNER,
        ),
    }


def _load(cur: Cursor, version: int) -> SignedList | None:
    row = cur.execute(
        "SELECT version, payload, jws_bp256r1, jws_es256 FROM federation_lists WHERE version = ?",
        (version,),
    ).fetchone()
    if row is None:
        return None
    return SignedList(int(row[0]), bytes(row[1]), {SigAlg.BP256R1: row[2], SigAlg.ES256: row[3]})


def _max_version(cur: Cursor) -> int:
    row = cur.execute("SELECT MAX(version) FROM federation_lists").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


_parsed: dict[str, FederationList] = {}
_parsed_lock = threading.Lock()


def current_list(db: Database) -> FederationList:
    """The newest stored federation list, parsed (version 0 and no entries when none).

    For readers without a :class:`Federation` (the CLI, the seed's hashed list mode). It
    asks the database for the highest version on every call, so every proxy instance on
    one database gets the same list; the parsed list is cached per database and version.
    """
    with db.read() as cur:
        version = _max_version(cur)
        with _parsed_lock:
            cached = _parsed.get(db.url)
        if cached is not None and cached.version == version:
            return cached
        stored = _load(cur, version) if version else None
    parsed = stored.parsed() if stored else FederationList(0)
    with _parsed_lock:
        _parsed[db.url] = parsed
    return parsed


def regenerate(db: Database, config: FhirProxyConfig) -> SignedList:
    """Write a new list version from the domains in ``db``, signed with ``config``'s signers."""
    return Federation.open(config, db).regenerate()


class Federation:
    """Domain changes and the signed federation list they produce (see the module docstring).

    Thread-safe; blocking (call it from an executor). Signers are loaded on first use.

    Args:
        db: the proxy database (migrated).
        signers: per algorithm, the signer; or a callable producing them (lazy loading).
        keep: list versions kept; older rows are pruned in the transaction that adds one.
    """

    def __init__(
        self,
        db: Database,
        signers: Mapping[SigAlg, Signer] | None = None,
        *,
        config: FhirProxyConfig | None = None,
        keep: int = 50,
    ) -> None:
        if signers is None and config is None:
            raise ValueError("give signers or a config to load them from")
        self.db = db
        self.domains = DomainStore(db)
        self.keep = max(keep, 1)
        self._signers = dict(signers) if signers is not None else None
        self._config = config
        self._signers_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cached: SignedList | None = None

    @classmethod
    def open(cls, config: FhirProxyConfig, db: Database) -> Federation:
        """The federation of a proxy with ``config`` on ``db`` (signers loaded lazily)."""
        return cls(db, config=config)

    def signers(self) -> dict[SigAlg, Signer]:
        """The list signers."""
        with self._signers_lock:
            if self._signers is None:
                assert self._config is not None
                self._signers = load_list_signers(self._config)
            return self._signers

    # -- reading -------------------------------------------------------------------------

    def latest(self) -> SignedList:
        """The list with the highest version in the database (created empty if none).

        A stored list whose signer certificate no longer qualifies (:meth:`_outdated_signer`)
        is re-signed as a new version first, so a data directory from before the list
        signer's role serves a list that verifies (ML-123677).
        """
        with self.db.read() as cur:
            version = _max_version(cur)
            cached = self._cached
            if cached is not None and cached.version == version:
                return cached
            stored = _load(cur, version) if version else None
        if stored is None:
            return self._first()
        if self._outdated_signer(stored):
            log.info(
                "federation list %d re-signed: its signer certificate was replaced", stored.version
            )
            return self.regenerate()
        return self._remember(stored)

    def current(self) -> FederationList:
        """The latest list, parsed."""
        return self.latest().parsed()

    # -- changing ------------------------------------------------------------------------

    def regenerate(self) -> SignedList:
        """Write a new list version from the current domains (no domain change)."""
        with self.db.write() as tx:
            self._lock(tx)
            stored = self._regenerate(tx)
        return self._remember(stored)

    def add(self, domain: Domain) -> SignedList:
        """Register ``domain`` (owner ``domain.tim_anbieter``); return the new list.

        Raises:
            TimkitError: 409 when the domain exists or one of its IKs is taken.
        """
        with self.db.write() as tx:
            self._lock(tx)
            if self.domains.get(domain.domain, tx) is not None:
                raise _error(
                    409,
                    IssueType.DUPLICATE,
                    f"domain {domain.domain} is already registered",
                    [{"attributeName": "domain", "attributeError": "already registered"}],
                )
            self._check_iks(tx, domain)
            DomainStore.insert(tx, domain)
            stored = self._regenerate(tx)
        return self._remember(stored)

    def update(self, domain: Domain) -> SignedList:
        """Replace ``domain``'s attributes; only its owner (``tim_anbieter``) may.

        Raises:
            TimkitError: 404 for an unknown domain, 403 for another provider's, 409 for
                an IK held by another domain.
        """
        with self.db.write() as tx:
            self._lock(tx)
            self._owned(tx, domain.domain, domain.tim_anbieter)
            self._check_iks(tx, domain)
            DomainStore.update(tx, domain)
            stored = self._regenerate(tx)
        return self._remember(stored)

    def remove(self, name: str, owner: str) -> SignedList:
        """Delete domain ``name`` of provider ``owner``; return the new list.

        Raises:
            TimkitError: 404 for an unknown domain, 403 for another provider's.
        """
        with self.db.write() as tx:
            self._lock(tx)
            self._owned(tx, name, owner)
            DomainStore.delete(tx, name.lower())
            stored = self._regenerate(tx)
        return self._remember(stored)

    # -- internals -----------------------------------------------------------------------

    def _outdated_signer(self, stored: SignedList) -> bool:
        """Whether a signature of ``stored`` comes from a certificate that is not the current
        signer's and lacks the list signer role or expires within ``RENEW_BEFORE``."""
        signers = self.signers()
        soon = datetime.now(UTC) + RENEW_BEFORE
        for alg, detached in stored.detached.items():
            try:
                leaf = jwt.certificates_of(jwt.header_of(detached))[0]
            except jwt.TokenError:
                return True
            signer = signers.get(alg)
            if signer is None or leaf == signer.certificate:
                continue
            if OID_VZD_TI not in admission_roles(leaf) or leaf.not_valid_after_utc < soon:
                return True
        return False

    def _first(self) -> SignedList:
        """The first list (version 1), unless another writer made one meanwhile."""
        with self.db.write() as tx:
            self._lock(tx)
            version = _max_version(tx)
            stored = _load(tx, version) if version else None
            if stored is None:
                stored = self._regenerate(tx)
        return self._remember(stored)

    def _lock(self, tx: Cursor) -> None:
        """Serialise list writers across processes (SQLite: BEGIN IMMEDIATE already does)."""
        if self.db.dialect == "postgresql":
            tx.execute("LOCK TABLE federation_lists IN EXCLUSIVE MODE")

    def _owned(self, tx: Cursor, name: str, owner: str) -> Domain:
        existing = self.domains.get(name, tx)
        if existing is None:
            raise _error(404, IssueType.NOT_FOUND, f"domain {name.lower()} is not registered", [])
        if existing.tim_anbieter != owner:
            raise _error(
                403,
                IssueType.FORBIDDEN,
                f"domain {existing.domain} was registered by another TI-M provider",
                [],
            )
        return existing

    def _check_iks(self, tx: Cursor, domain: Domain) -> None:
        held = DomainStore.ik_holders(tx, domain.ik, except_domain=domain.domain)
        if held:
            raise _error(
                409,
                IssueType.CONFLICT,
                f"IK {', '.join(sorted(held))} already belongs to another domain",
                [
                    {"attributeName": "ik", "attributeError": f"IK {ik} is already registered"}
                    for ik in sorted(held)
                ],
            )

    def _regenerate(self, tx: Cursor) -> SignedList:
        version = _max_version(tx) + 1
        payload = build_payload(version, DomainStore.list_rows(tx))
        detached = {alg: sign_detached(payload, s) for alg, s in self.signers().items()}
        tx.execute(
            "INSERT INTO federation_lists (version, payload, jws_bp256r1, jws_es256, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                version,
                payload,
                detached[SigAlg.BP256R1],
                detached[SigAlg.ES256],
                datetime.now(UTC).isoformat(timespec="microseconds"),
            ),
        )
        tx.execute("DELETE FROM federation_lists WHERE version <= ?", (version - self.keep,))
        return SignedList(version, payload, detached)

    def _remember(self, stored: SignedList) -> SignedList:
        with self._cache_lock:
            if self._cached is None or stored.version >= self._cached.version:
                self._cached = stored
        return stored


def hashed_list(db: Database) -> dict[str, Any]:
    """The seed's federation list (VZD 1.0.0 ``/tim-provider-services/FederationList``):
    current version, SHA-256 of every lower-case domain as lower-case hex."""
    current = current_list(db)
    hashes = sorted(
        hashlib.sha256(entry.domain.lower().encode()).hexdigest() for entry in current.entries
    )
    return {"version": current.version, "hashAlgorithm": "SHA-256", "domainList": hashes}
