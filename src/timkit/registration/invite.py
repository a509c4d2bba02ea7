"""Stage 3 of the permission concept for the RD's proxies (seed 002 §3.5.2.3).

``POST /vzd/invite {"invitingUser": "@a:x", "invitedUser": "@b:y"}`` (proxy bearer token, see
:func:`~timkit.registration.federation.require_proxy`) answers 200 ``{"allowed": true, "rule"}``
or 403 ``M_FORBIDDEN``, decided from the VZD-FHIR-Directory's whereIs
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

import re
from dataclasses import dataclass

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.core.web import json_response
from timkit.registration.context import context
from timkit.registration.directory_client import DirectoryClient
from timkit.registration.federation import require_proxy
from timkit.registration.jsonio import read_json

RULE_SOURCE = "seed 002 §3.5.2.3 (Berechtigungskonzept Stufe 3)"
ORG = frozenset({"org", "orgPract"})
PRACT = frozenset({"pract", "orgPract"})
_MXID = re.compile(r"^@[\x21-\x39\x3b-\x7e]+:[A-Za-z0-9.\-\[\]:]+$")


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


def _mxid(body: dict[str, object], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not _MXID.match(value) or len(value) > 255:
        raise TimkitError(400, Codes.INVALID_PARAM, f"{key} must be a Matrix user ID @local:domain")
    return value


async def post_invite(request: web.Request) -> web.Response:
    """``POST /vzd/invite``: 200 allowed, or 403 naming the rule."""
    ctx = context(request)
    require_proxy(request, ctx.config.proxies)
    body = await read_json(request)
    inviting, invited = _mxid(body, "invitingUser"), _mxid(body, "invitedUser")
    decision = await check_invite(ctx.directory, inviting, invited)
    if not decision.allowed:
        raise TimkitError(
            403,
            Codes.FORBIDDEN,
            f"invitation refused by stage 3: {decision.rule}",
            requirement=RULE_SOURCE,
        )
    return json_response({"allowed": True, "rule": decision.rule})


def setup(app: web.Application) -> None:
    """Add ``POST /vzd/invite``."""
    app.router.add_post("/vzd/invite", post_invite)
