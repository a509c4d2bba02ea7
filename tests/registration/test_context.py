"""The RD's module graph: the request context sits below every route; no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "timkit.registration"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """The RD modules ``path`` imports, those for type checking only included (``from x
    import y`` counts ``x.y`` when that is a module, else ``x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known
            found.update(submodules or {node.module})
    return found & known


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in (SRC / "timkit" / "registration").rglob("*.py")}
    known = set(paths)
    return {name: _imports(path, known) - {name} for name, path in paths.items()}


def test_rd_modules_import_no_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                circles.append([*trail[trail.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*trail, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_context_and_list_cache_import_no_route() -> None:
    graph = _graph()
    for module in (f"{PACKAGE}.context", f"{PACKAGE}.list_cache"):
        routes = {m for m in graph[module] if m.startswith(f"{PACKAGE}.api")}
        assert routes == set(), module
    assert f"{PACKAGE}.context" not in graph[f"{PACKAGE}.list_cache"]
