"""Jinja2 environments for server-rendered pages, with the shared page skeleton.

:func:`environment` loads a component's own templates and, under the ``core/`` prefix, the
skeleton ``core/page.html`` (doctype, ``<head>`` with charset and viewport, ``<main>``). A
component's ``base.html`` extends it and fills the blocks ``lang`` (the ``<html lang>``),
``site`` (the title suffix after `` · ``) and ``style`` (the inline CSS); its pages fill
``title`` and ``main``. ``core/tool.html`` is the plain look of the local tools' pages
(mailbox, push receiver): it fills ``lang`` (``en``) and ``style`` (body, ``<main>`` width from
the block ``width``, headings, tables) and leaves ``tool_style`` for a tool's own rules. No
translation machinery: components pass their own labels.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

CORE_TEMPLATES = Path(__file__).parent / "templates"
"""Where ``core/page.html`` lives (the ``core/`` prefix is part of its name)."""


def environment(templates: Path) -> jinja2.Environment:
    """An environment over the directory ``templates`` plus ``core/page.html``.

    HTML autoescaping is on for every template (nothing a caller passes becomes markup
    unless marked safe), an undefined variable is an error (``StrictUndefined``), and block
    tags leave no blank lines (``trim_blocks``, ``lstrip_blocks``). ``templates`` is
    searched before the core templates.
    """
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(templates), jinja2.FileSystemLoader(CORE_TEMPLATES)]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
