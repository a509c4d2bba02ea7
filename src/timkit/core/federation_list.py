"""The TI-M federation list: reading it in every known shape, and verifying its signature.

The VZD-FHIR-Directory signs the list as a compact JWS whose header carries the signer's
certificate chain (``x5c``); the Registrierungs-Dienst and the Messenger-Proxy only use a
list that :func:`verify_list` accepts (ML-123677 for the signing, ML-123891 for its use):

1. the ``x5c`` chain is a valid certificate path to one of the trust anchors
   (:func:`timkit.core.certpath.validate_path`: validity, EC keys and ECDSA signatures,
   every issuer a CA with keyCertSign within its path length, the signer an end entity with
   digitalSignature, no unknown critical extension);
2. the signer is the federation list signer: a ``C.FD.SIG`` certificate (certificate policy
   ``oid_fd_sig``) whose ``Admission`` extension carries the configured role, by default
   the VZD's ``oid_vzd_ti`` (:data:`LIST_SIGNER_ROLE`). TLS certificates, the RD's
   RegService-token signer or an IDP's signer never carry it;
3. the JWS signature verifies with the signer's key using the expected algorithm;
4. the payload parses (:func:`parse_federation_list`).

Membership (:meth:`FederationList.contains`) is a set lookup; the seed's hashed form
(``hashAlgorithm``: SHA-256 hex digests instead of names) is looked up by digest.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509

from timkit.core import jwt
from timkit.core.certpath import (
    OID_FD_SIG,
    OID_VZD_TI,
    PathError,
    admission_roles,
    policy_oids,
    validate_path,
)
from timkit.core.errors import TimkitError

log = logging.getLogger(__name__)

INVALID = "TIM_FEDERATION_LIST_INVALID"
"""``errcode`` of a list that failed verification."""
REQUIREMENT = "ML-123891"
"""The rule a rejected list violates: only a verified, current list may be used."""
LIST_SIGNER_ROLE = OID_VZD_TI
"""The role (Admission professionOID) of the federation list signer: ``oid_vzd_ti``."""
ROLE_PATTERN = r"^[0-2](\.(0|[1-9][0-9]*))+$"
"""A dotted OID, as the ``signer_role`` config keys take it."""


class FederationListError(ValueError):
    """A federation list payload that cannot be understood."""


@dataclass(frozen=True)
class ListEntry:
    """One domain of a federation list.

    Attributes:
        domain: the domain (a SHA-256 hex digest in the seed's hashed list).
        telematik_id: TelematikID of the organisation ("" when the list omits it).
        is_insurance: whether it is an insurance's domain for insured persons.
        ik: its IKs.
        tim_anbieter: the provider that registered it (None when absent or null).
    """

    domain: str
    telematik_id: str = ""
    is_insurance: bool = False
    ik: tuple[str, ...] = ()
    tim_anbieter: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as this proxy writes it (FederationList.json, current schema)."""
        return {
            "domain": self.domain,
            "telematikID": self.telematik_id,
            "isInsurance": self.is_insurance,
            "ik": list(self.ik),
            "timAnbieter": self.tim_anbieter,
        }


@dataclass(frozen=True)
class FederationList:
    """A parsed federation list.

    Attributes:
        version: the list's version (0: no list has been generated yet).
        entries: its domains, in list order.
        hash_algorithm: ``hashAlgorithm`` of the seed's hashed list, else None.
    """

    version: int
    entries: tuple[ListEntry, ...] = ()
    hash_algorithm: str | None = None

    _domains: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_domains", frozenset(e.domain.lower() for e in self.entries))

    def domains(self) -> frozenset[str]:
        """The domain names (or hashes) in the list."""
        return frozenset(e.domain for e in self.entries)

    def contains(self, domain: str) -> bool:
        """Whether ``domain`` is in the list (case-insensitive; by digest in a hashed list)."""
        name = domain.lower()
        if self.hash_algorithm is None:
            return name in self._domains
        return hashlib.sha256(name.encode()).hexdigest() in self._domains


def _entry(item: object, index: int) -> ListEntry:
    if isinstance(item, str):
        return ListEntry(item)
    if not isinstance(item, dict) or not isinstance(item.get("domain"), str):
        raise FederationListError(f"domainList[{index}] has no domain")
    iks = item.get("ik", item.get("iks"))
    if iks is None:
        iks = []
    elif isinstance(iks, str | int):
        iks = [iks]
    if not isinstance(iks, list):
        raise FederationListError(f"domainList[{index}].ik is not an array")
    anbieter = item.get("timAnbieter", item.get("timProvider"))
    telematik_id = item.get("telematikID")
    return ListEntry(
        domain=item["domain"],
        telematik_id=telematik_id if isinstance(telematik_id, str) else "",
        is_insurance=item.get("isInsurance") is True,
        ik=tuple(str(i) for i in iks),
        tim_anbieter=anbieter if isinstance(anbieter, str) else None,
    )


def parse_federation_list(payload: bytes | str | Mapping[str, Any]) -> FederationList:
    """Parse a federation list payload of any known shape.

    Accepts ``ik`` or ``iks`` (array, single value or null), ``timAnbieter`` or
    ``timProvider`` (null allowed), a missing ``telematikID``/``isInsurance``, and the
    seed's hashed form (``hashAlgorithm`` with plain strings in ``domainList``).

    Raises:
        FederationListError: for a payload that is not a JSON object with an integer
            ``version`` and a ``domainList`` array of entries naming a domain.
    """
    if isinstance(payload, bytes | str):
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            raise FederationListError(f"federation list is not JSON: {e}") from e
    else:
        document = dict(payload)
    if not isinstance(document, dict):
        raise FederationListError("federation list is not a JSON object")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise FederationListError("federation list has no integer version")
    items = document.get("domainList")
    if not isinstance(items, list):
        raise FederationListError("federation list has no domainList array")
    hash_algorithm = document.get("hashAlgorithm")
    return FederationList(
        version,
        tuple(_entry(item, i) for i, item in enumerate(items)),
        hash_algorithm if isinstance(hash_algorithm, str) else None,
    )


class ListVerificationError(TimkitError):
    """A received federation list failed verification (never used, never served)."""

    def __init__(self, message: str) -> None:
        super().__init__(502, INVALID, message, requirement=REQUIREMENT)


def load_anchors(paths: Sequence[Path]) -> list[x509.Certificate]:
    """The trust anchors in the PEM files ``paths`` (missing files are skipped, logged)."""
    anchors: list[x509.Certificate] = []
    for path in paths:
        try:
            anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError) as e:
            log.error("federation list trust anchor %s not loaded: %s", path, e)
    return anchors


def check_chain(
    chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], now: datetime
) -> None:
    """Check rule 1 of the module docstring for the ``x5c`` chain (signer first).

    Raises:
        ListVerificationError: naming the certificate and the rule that failed.
    """
    try:
        validate_path(chain, anchors, now)
    except PathError as e:
        raise ListVerificationError(f"x5c rejected: {e}") from e


def check_signer_role(cert: x509.Certificate, role: str = LIST_SIGNER_ROLE) -> None:
    """Check rule 2 of the module docstring: ``cert`` is a C.FD.SIG carrying ``role``.

    Raises:
        ListVerificationError: naming the signer and what it lacks.
    """
    name = cert.subject.rfc4514_string()
    if OID_FD_SIG not in policy_oids(cert):
        raise ListVerificationError(
            f"the signer {name} is no C.FD.SIG certificate (policy {OID_FD_SIG} missing):"
            " not the federation list signer (ML-123677)"
        )
    if role not in admission_roles(cert):
        raise ListVerificationError(
            f"the signer {name} lacks the federation list signer role {role} in its"
            " Admission extension (ML-123677)"
        )


def verify_list(
    jws: bytes,
    anchors: Sequence[x509.Certificate],
    sig_alg: str,
    *,
    now: datetime,
    signer_role: str = LIST_SIGNER_ROLE,
) -> FederationList:
    """Verify a compact-JWS federation list (see the module docstring); the parsed list.

    Args:
        jws: the compact JWS.
        anchors: the trust anchors of the signer's path (none: every list is rejected).
        sig_alg: the one JWS algorithm accepted (``BP256R1`` or ``ES256``).
        now: the time the certificates must be valid at.
        signer_role: the Admission professionOID the signer must carry.

    Raises:
        ListVerificationError: naming what failed.
    """
    try:
        token = jws.decode("ascii")
        header = jwt.header_of(token)
        chain = jwt.certificates_of(header)
        check_chain(chain, anchors, now)
        check_signer_role(chain[0], signer_role)
        payload = jwt.verify_signature(token, jwt.key_from_certificate(chain[0]), (sig_alg,))
        parsed = parse_federation_list(payload)
    except ListVerificationError:
        raise
    except (TimkitError, UnicodeDecodeError, ValueError, TypeError) as e:
        message = e.message if isinstance(e, TimkitError) else str(e)
        raise ListVerificationError(f"federation list rejected: {message}") from e
    return parsed
