"""Translate VZD full-text queries (``_text``, ``_content``) to SQLite FTS5 and PostgreSQL.

Simple mode (the default, as the live VZD): ``-`` and ``,`` count as spaces and every word
must occur; the last word may be the start of a word (type-ahead), so ``Praxis Sonnensch``
finds "Praxis Sonnenschein". Earlier words match whole words only: a prefix of a common word
("dr", "praxis") would expand to hundreds of terms at national scale.
Complex mode (``_complexSearch=true``, the HAPI/Elasticsearch syntax the VZD documents):
``"a phrase"``, ``+`` or space = AND, ``|`` or ``,`` = OR, a leading ``-`` = NOT, a trailing
``*`` = prefix and ``~N`` (fuzzy) is accepted and matched exactly. Terms are folded and split
into words exactly like the indexed text (:func:`timkit.directory.indexing.text_words`), so both
engines compare like with like.
"""

from __future__ import annotations

import re

from timkit.core.errors import IssueType, TimkitError
from timkit.directory.indexing import text_words

_TOKEN = re.compile(r'-?"[^"]*"|[|,]|-?[^\s"|,+]+')


def _words(text: str) -> list[str]:
    return text_words(text)


def _simple_terms(query: str) -> list[str]:
    words = _words(query.replace("-", " ").replace(",", " "))
    if not words:
        raise TimkitError(
            400,
            IssueType.INVALID,
            f"full-text query {query!r} contains no searchable word",
            requirement="ML-123880",
        )
    return words


def _complex(query: str) -> list[list[tuple[bool, str, bool]]]:
    """OR-groups of AND-ed ``(negated, phrase words, prefix)`` terms.

    As the HOWTO's examples show the live VZD (HAPI) doing: without any quotation mark in the
    query a plain word matches the start of a word (``Franz+Wallraf+Str`` finds
    "Franz-Wallraff-Str."); once the query quotes something, plain words match whole words
    only (``"Aachen"+Wallraf`` finds nothing) unless they end in ``*``.
    """
    implicit_prefix = '"' not in query
    groups: list[list[tuple[bool, str, bool]]] = [[]]
    for token in _TOKEN.findall(query):
        if token in ("|", ","):
            groups.append([])
            continue
        negated = token.startswith("-")
        token = token.lstrip("-")
        prefix = token.endswith("*") or implicit_prefix
        token = re.sub(r"~\d*$", "", token.rstrip("*"))
        words = " ".join(_words(token))
        if words:
            groups[-1].append((negated, words, prefix))
    groups = [g for g in groups if any(not negated for negated, _, _ in g)]
    if not groups:
        raise TimkitError(
            400,
            IssueType.INVALID,
            f"full-text query {query!r} has no positive term",
            requirement="ML-123880",
        )
    return groups


def fts5_query(query: str, *, complex_syntax: bool) -> str:
    """An FTS5 MATCH expression for ``query``."""
    if not complex_syntax:
        words = _simple_terms(query)
        return " AND ".join([*(f'"{w}"' for w in words[:-1]), f'"{words[-1]}"*'])
    ors = []
    for group in _complex(query):
        positive = [f'"{w}"{"*" if p else ""}' for n, w, p in group if not n]
        negative = [f'"{w}"{"*" if p else ""}' for n, w, p in group if n]
        expression = " AND ".join(positive)
        for term in negative:
            expression = f"({expression}) NOT {term}"
        ors.append(f"({expression})")
    return " OR ".join(ors)


def tsquery(query: str, *, complex_syntax: bool) -> str:
    """A ``to_tsquery('simple', …)`` expression for ``query``."""
    if not complex_syntax:
        simple = _simple_terms(query)
        return " & ".join([*simple[:-1], f"{simple[-1]}:*"])
    ors = []
    for group in _complex(query):
        terms = []
        for negated, words, prefix in group:
            phrase = " <-> ".join(
                f"{w}:*" if prefix and i == len(words.split()) - 1 else w
                for i, w in enumerate(words.split())
            )
            terms.append(f"!({phrase})" if negated else f"({phrase})")
        ors.append("(" + " & ".join(terms) + ")")
    return " | ".join(ors)
