"""HTTP edge of the mailbox: the page, one message, and the JSON API.

Routes::

    GET    /health                   liveness
    GET    /[?to=<address>]          the mailbox page, newest first
    GET    /messages/{id}            one message (text with clickable links, HTML as source)
    GET    /api/messages[?to=...]    [{id, from, to, subject, date, received, text}], newest first
    GET    /api/messages/{id}        one message, plus its ``html`` source
    DELETE /api/messages[?to=...]    delete all (or that recipient's) messages → {"deleted": n}

Errors are rendered here only: Matrix-style JSON (``{"errcode", "error"}``) under ``/api``,
an HTML page elsewhere. Every response carries ``nosniff`` and a CSP allowing no script,
no frame and no remote content.
"""

from __future__ import annotations

import logging

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.core.web import (
    SCRIPTLESS_PAGE_HEADERS,
    edge_middleware,
    health,
    html_response,
    json_response,
)
from timkit.mailbox import pages
from timkit.mailbox.messages import Mailbox, Message

log = logging.getLogger(__name__)

MAILBOX_KEY = web.AppKey("mailbox.mailbox", Mailbox)


def mailbox(request: web.Request) -> Mailbox:
    """The mailbox of the app serving ``request``."""
    return request.app[MAILBOX_KEY]


def render_error(request: web.Request, error: TimkitError) -> web.Response:
    """``error`` as JSON under ``/api``, as a page elsewhere."""
    path = request.path
    if path.startswith("/api/") or path == "/health":
        return json_response(error.to_matrix(), error.status)
    return html_response(pages.error_page(error.status, error.describe()), error.status)


_edge = edge_middleware(render_error, logger=log, headers=SCRIPTLESS_PAGE_HEADERS)


def _message(request: web.Request) -> Message:
    raw = request.match_info["id"]
    message = mailbox(request).get(int(raw)) if raw.isdigit() else None
    if message is None:
        raise TimkitError(404, Codes.NOT_FOUND, f"no message {raw!r}")
    return message


def _recipient(request: web.Request) -> str:
    return request.query.get("to", "").strip()


async def index(request: web.Request) -> web.Response:
    """The mailbox page."""
    to = _recipient(request)
    return html_response(pages.list_page(mailbox(request).newest_first(to), to))


async def show(request: web.Request) -> web.Response:
    """One message's page."""
    return html_response(pages.message_page(_message(request)))


async def list_messages(request: web.Request) -> web.Response:
    """The messages as JSON, newest first."""
    messages = mailbox(request).newest_first(_recipient(request))
    return json_response([m.summary() for m in messages])


async def get_message(request: web.Request) -> web.Response:
    """One message as JSON, with its HTML source."""
    return json_response(_message(request).details())


async def delete_messages(request: web.Request) -> web.Response:
    """Delete all messages, or those of recipient ``?to=``."""
    return json_response({"deleted": mailbox(request).clear(_recipient(request))})


def create_app(box: Mailbox) -> web.Application:
    """The aiohttp application of the mailbox."""
    app = web.Application(middlewares=[_edge])
    app[MAILBOX_KEY] = box
    app.router.add_get("/health", health)
    app.router.add_get("/", index)
    app.router.add_get("/messages/{id}", show)
    app.router.add_get("/api/messages", list_messages)
    app.router.add_delete("/api/messages", delete_messages)
    app.router.add_get("/api/messages/{id}", get_message)
    return app
