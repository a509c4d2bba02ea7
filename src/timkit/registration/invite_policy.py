"""Stage 3 of the permission concept for the RD's proxies (seed 002 §3.5.2.3).

Behind ``POST /vzd/invite`` (:mod:`timkit.registration.api.invite`): an invitation is decided
from the VZD-FHIR-Directory's whereIs
(``/tim-provider-services/localization``: ``org``, ``pract``, ``orgPract`` or ``none``). The
invitation is allowed when

* the invitee's MXID is in the organisation directory (``org`` or ``orgPract``), or
* inviter and invitee are both in the personal directory (``pract`` or ``orgPract``).

Visibility: the directory's whereIs only reports Endpoints it lists; an MXID whose owner
restricted its visibility is expected to be reported as ``none`` by the directory, and is
then refused here. Fail closed: when the directory cannot be asked the answer is 503, never
an "allowed".
"""

from __future__ import annotations

from dataclasses import dataclass

from timkit.registration.directory_client import DirectoryClient

RULE_SOURCE = "seed 002 §3.5.2.3 (Berechtigungskonzept Stufe 3)"
ORG = frozenset({"org", "orgPract"})
PRACT = frozenset({"pract", "orgPract"})


@dataclass(frozen=True)
class Decision:
    """The stage-3 decision and the rule it rests on."""

    allowed: bool
    rule: str


def decide(inviting_where: str, invited_where: str) -> Decision:
    """Apply the stage-3 rules to the two whereIs answers."""
    if invited_where in ORG:
        return Decision(True, "the invited user is listed in the organisation directory")
    if invited_where in PRACT and inviting_where in PRACT:
        return Decision(True, "both users are listed in the personal directory")
    return Decision(
        False,
        "the invited user is not visible in the organisation directory, and inviter and"
        " invitee are not both in the personal directory",
    )


async def check_invite(directory: DirectoryClient, inviting: str, invited: str) -> Decision:
    """Ask the directory where both users are and decide (see the module docstring).

    Raises:
        TimkitError: 503 when the directory cannot be asked (fail closed).
    """
    invited_where = await directory.where_is(invited)
    inviting_where = "none" if invited_where in ORG else await directory.where_is(inviting)
    return decide(inviting_where, invited_where)
