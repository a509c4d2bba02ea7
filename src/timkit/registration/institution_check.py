"""Which profession OIDs may register an organisation (AF_10103, ML-128759).

The RD accepts only the institution OIDs of German healthcare (gematik's code system
``OrganizationProfessionOID``, ``gemSpec_OID`` Tab_PKI_403, as listed in VZD-FHIR-Directory
1.0.1): they are what an SMC-B carries. The person OIDs of ``PractitionerProfessionOID``
(``gemSpec_OID`` Tab_PKI_402) are what an HBA carries; they are refused with a message saying
that the organisation's SMC-B is needed. Any other OID is refused as unknown.

The tables are :mod:`timkit.core.professions`; this module adds the RD's refusal rule.
"""

from __future__ import annotations

from timkit.core.errors import Codes, TimkitError
from timkit.core.professions import INSTITUTIONS, PERSONS

REQUIREMENT = "ML-128759"


def check_institution(oid: str, lang: str = "de") -> str:
    """The German name of the institution type ``oid`` if it may register an organisation.

    Raises:
        TimkitError: 403 ``M_FORBIDDEN`` (ML-128759) for a person (HBA) OID, naming that the
            SMC-B is needed, or for an OID that is no gematik institution OID.
    """
    if oid in INSTITUTIONS:
        return INSTITUTIONS[oid]
    if oid in PERSONS:
        message = (
            f"professionOID {oid} ({PERSONS[oid]}) is the profession OID of a person (HBA); "
            "registering an organisation needs the organisation's SMC-B"
            if lang == "en"
            else f"professionOID {oid} ({PERSONS[oid]}) ist eine Berufs-OID einer Person (HBA); "
            "für die Registrierung ist die SMC-B der Organisation nötig"
        )
        raise TimkitError(
            403, Codes.FORBIDDEN, message, requirement=REQUIREMENT, extra={"reason": "hba"}
        )
    message = (
        f"professionOID {oid!r} is not an institution OID of German healthcare"
        if lang == "en"
        else f"professionOID {oid!r} ist keine Institutions-OID des deutschen Gesundheitswesens"
    )
    raise TimkitError(
        403, Codes.FORBIDDEN, message, requirement=REQUIREMENT, extra={"reason": "unknown_oid"}
    )
