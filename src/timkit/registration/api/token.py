"""``POST /api/v1/token``: I_requestToken (seed 002 §3.6) for the logged-in Org-Admin.

An Org-Admin session (:func:`~timkit.registration.auth.require_admin`) gets
``{"token", "token_type": "RegService-OpenID-Token", "expires_in"}`` from
:func:`timkit.registration.requesttoken.issue` (``Cache-Control: no-store``); each issue is
audited as ``token.request``.
"""

from __future__ import annotations

from aiohttp import web

from timkit.core.web import json_response
from timkit.registration.auth import audit_action, require_admin
from timkit.registration.context import context
from timkit.registration.requesttoken import issue


async def post_token(request: web.Request) -> web.Response:
    """``POST /api/v1/token``: a RegService-OpenID-Token for the logged-in Org-Admin."""
    admin = await require_admin(request)
    ctx = context(request)
    body = issue(ctx.config, await ctx.blocking(ctx.token_signer), admin)
    await audit_action(ctx, admin, "token.request", "owner-authenticate", "success")
    return json_response(body, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """Add ``POST /api/v1/token``."""
    app.router.add_post("/api/v1/token", post_token)
