"""Import contract: components import ``timkit.core`` and ``timkit.sdk``, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "timkit"
SHARED = {"core", "sdk"}
COMPOSITION = {"runtime", "bench", "cli"}  # the layer above components; may know them all


def _timkit_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n.split(".")[1] for n in names if n.startswith("timkit.") and n.count(".") >= 1}


def _packages() -> list[str]:
    return sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())


def test_components_import_only_core_and_sdk() -> None:
    violations = []
    for package in _packages():
        if package in COMPOSITION:
            continue
        allowed = {package} | ({"core"} if package in SHARED else SHARED)
        for module in (SRC / package).rglob("*.py"):
            for imported in _timkit_imports(module) - allowed:
                violations.append(f"{module.relative_to(SRC)} imports timkit.{imported}")
    assert violations == []


def test_core_imports_no_component() -> None:
    for module in (SRC / "core").rglob("*.py"):
        assert _timkit_imports(module) <= {"core"}, module


def test_runtime_imports_neither_benchmarks_nor_cli() -> None:
    # bench and cli sit on top of runtime; runtime (what `timkit up` runs) knows neither
    for module in (SRC / "runtime").rglob("*.py"):
        assert _timkit_imports(module) & {"bench", "cli"} == set(), module


def test_no_component_contains_benchmark_code() -> None:
    # every benchmark is a module of timkit.bench (`timkit bench …`), none lives in a component
    stray = [
        str(module.relative_to(SRC))
        for module in SRC.rglob("*bench*.py")
        if module.relative_to(SRC).parts[0] != "bench"
    ]
    assert stray == []
