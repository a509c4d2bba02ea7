"""The error codes: one place spells each Matrix ``errcode`` (``Codes``), nothing else does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import timkit
from timkit.core.errors import Codes

SRC = Path(timkit.__file__).parent
ERRCODE = re.compile(r"\bM_[A-Z][A-Z0-9_]*")
"""A Matrix error code as it would appear in a string (``M_FORBIDDEN``, ``M_TOO_LARGE``)."""


def _documentation(tree: ast.AST) -> set[int]:
    """The string constants of ``tree`` that are statements of their own (docstrings, the
    strings documenting attributes): text about codes, not codes a program uses."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def errcode_literals(path: Path, root: Path) -> list[str]:
    """``file:line: literal`` (``file`` relative to ``root``) for each string or bytes
    literal of ``path`` spelling an ``M_…`` code, f-string parts included, documentation
    excluded."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    documentation = _documentation(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in documentation:
            continue
        value = node.value
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if isinstance(text, str) and ERRCODE.search(text):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {text[:60]!r}")
    return found


def test_no_module_but_core_errors_spells_a_matrix_errcode() -> None:
    found = [
        hit
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "core" / "errors.py"
        for hit in errcode_literals(path, SRC.parent)
    ]
    assert found == [], "use a timkit.core.errors.Codes member instead:\n" + "\n".join(found)


def test_the_scan_finds_literals_in_code_and_f_strings_but_not_in_documentation(
    tmp_path: Path,
) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Answers 404 M_NOT_FOUND."""\n'
        'CODE = "M_FORBIDDEN"\n'
        '"""M_FORBIDDEN: documented."""\n'
        "def f(x: str) -> str:\n"
        '    """Raises M_UNKNOWN."""\n'
        '    return f"M_LIMIT_EXCEEDED {x}" + str(b"M_TOO_LARGE")\n',
        "utf-8",
    )
    hits = errcode_literals(sample, tmp_path)
    assert [hit.split(": ", 1)[1] for hit in sorted(hits)] == [
        "'M_FORBIDDEN'",
        "'M_LIMIT_EXCEEDED '",
        "'M_TOO_LARGE'",
    ]


def test_codes_are_distinct_and_matrix_or_timkit_codes() -> None:
    assert len(Codes.__members__) == len(list(Codes)), "two members share a value (an alias)"
    for code in Codes:
        assert re.fullmatch(r"(M|TIMKIT)_[A-Z][A-Z0-9_]*", code.value), code
