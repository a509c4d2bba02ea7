"""Rendering pages: one Jinja2 environment (autoescape on), the translator, the CSRF token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from timkit.core import templates
from timkit.core.errors import TimkitError
from timkit.registration.web import csrf
from timkit.registration.web.i18n import LANG_COOKIE, language, translator

TEMPLATES = Path(__file__).parent / "templates"
ENV_KEY = web.AppKey("registration.jinja", jinja2.Environment)


def environment() -> jinja2.Environment:
    """The template environment (:func:`timkit.core.templates.environment` over ours)."""
    return templates.environment(TEMPLATES)


def page(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    """Render ``template`` for ``request`` in its language, with a CSRF token for forms."""
    lang = language(request)
    values.setdefault("admin", None)
    html = (
        request.app[ENV_KEY]
        .get_template(template)
        .render(
            t=translator(lang),
            lang=lang,
            csrf=csrf.token_for(request),
            path=request.path,
            **values,
        )
    )
    response = web.Response(text=html, status=status, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    csrf.set_cookie(request, response)
    if request.query.get("lang") == lang and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(
            LANG_COOKIE, lang, path="/", secure=True, samesite="Strict", max_age=31536000
        )
    return response


def error_page(request: web.Request, error: TimkitError) -> web.Response:
    """The HTML error page for ``error`` (status, message, requirement)."""
    return page(request, "error.html", error.status, error=error)
