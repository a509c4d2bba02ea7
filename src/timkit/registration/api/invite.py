"""``POST /vzd/invite``: stage 3 of the permission concept for the RD's proxies.

``POST /vzd/invite {"invitingUser": "@a:x", "invitedUser": "@b:y"}`` (proxy bearer token, see
:func:`~timkit.registration.api.list_route.require_proxy`) answers 200
``{"allowed": true, "rule"}`` or 403 ``M_FORBIDDEN`` naming the rule, decided by
:func:`timkit.registration.invite_policy.check_invite`; 400 ``M_INVALID_PARAM`` for a user ID that
is not ``@local:domain``.
"""

from __future__ import annotations

import re

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.core.web import json_response
from timkit.registration.api.list_route import require_proxy
from timkit.registration.context import context
from timkit.registration.invite_policy import RULE_SOURCE, check_invite
from timkit.registration.jsonio import read_json

_MXID = re.compile(r"^@[\x21-\x39\x3b-\x7e]+:[A-Za-z0-9.\-\[\]:]+$")


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
