"""JSON API of AF_10060 for providers who automate onboarding (Org-Admin session required).

``GET /api/v1/services``                 200 ``{"services": [Service]}``
``POST /api/v1/services {domain}``       202 ``Service`` (state ``requested``)
``GET /api/v1/services/{domain}``        200 ``Service`` (404 unknown or another org's)
``DELETE /api/v1/services/{domain}``     202 ``Service`` (state ``deregistering``)
``GET /api/v1/domains/check?domain=``    200 ``{domain, available, reason}``

``Service`` is :meth:`~timkit.registration.provisioning.handlers.ServiceView.to_json`; a 202
carries ``Location`` of the service to poll. Errors are rendered by
:mod:`timkit.registration.api.app`.
"""

from __future__ import annotations

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.core.web import json_response
from timkit.registration.auth import require_admin
from timkit.registration.context import context
from timkit.registration.jsonio import read_json
from timkit.registration.provisioning import handlers

PREFIX = "/api/v1"


async def _domain_of_body(request: web.Request) -> str:
    body = await read_json(request)
    if not isinstance(body.get("domain"), str):
        raise TimkitError(400, Codes.BAD_JSON, 'the body must be {"domain": "<name>"}')
    return str(body["domain"])


def _accepted(view: handlers.ServiceView) -> web.Response:
    return json_response(
        view.to_json(), 202, headers={"Location": f"{PREFIX}/services/{view.domain}"}
    )


async def list_services(request: web.Request) -> web.Response:
    """``GET /api/v1/services``."""
    admin = await require_admin(request)
    views = await handlers.list_services(context(request), admin)
    return json_response({"services": [v.to_json() for v in views]})


async def create_service(request: web.Request) -> web.Response:
    """``POST /api/v1/services``: start AF_10060 for the body's domain."""
    admin = await require_admin(request)
    domain = await _domain_of_body(request)
    return _accepted(await handlers.provision(context(request), admin, domain))


async def get_service(request: web.Request) -> web.Response:
    """``GET /api/v1/services/{domain}``: state and progress."""
    admin = await require_admin(request)
    view = await handlers.get_service(context(request), admin, request.match_info["domain"])
    return json_response(view.to_json())


async def delete_service(request: web.Request) -> web.Response:
    """``DELETE /api/v1/services/{domain}``: deprovision (domain out of the federation first)."""
    admin = await require_admin(request)
    return _accepted(
        await handlers.deprovision(context(request), admin, request.match_info["domain"])
    )


async def check_domain(request: web.Request) -> web.Response:
    """``GET /api/v1/domains/check?domain=``: the live domain check."""
    await require_admin(request)
    check = await handlers.check_domain(context(request), request.query.get("domain", ""))
    return json_response(check.to_json())


def setup(app: web.Application) -> None:
    """Add the AF_10060 JSON routes."""
    app.router.add_get(f"{PREFIX}/services", list_services)
    app.router.add_post(f"{PREFIX}/services", create_service)
    app.router.add_get(f"{PREFIX}/services/{{domain}}", get_service)
    app.router.add_delete(f"{PREFIX}/services/{{domain}}", delete_service)
    app.router.add_get(f"{PREFIX}/domains/check", check_domain)
