"""The architecture's rules: the import contract (components import ``timkit.core`` and
``timkit.sdk``, never each other) and the layout of the tests (they mirror ``src/``)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src" / "timkit"
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


# Directories of tests/ that hold no unit tests: e2e boots real processes (a federation, Synapse;
# any file name), conformance is the schemathesis run against the specs' OpenAPI files,
# support holds helpers shared by all tests.
NOT_MIRRORED = {"e2e", "conformance", "support"}
RULES = TESTS / "test_architecture.py"  # this file: rules about the whole tree, no one module


def _tested_module(test_file: Path) -> Path | None:
    """The src module or package ``tests/<pkg path>/test_<module>.py`` names, if it exists
    (``test_main.py`` names ``__main__.py``)."""
    package = SRC.joinpath(*test_file.relative_to(TESTS).parts[:-1])
    name = test_file.stem.removeprefix("test_")
    for candidate in (name, f"__{name}__"):
        for path in (package / f"{candidate}.py", package / candidate / "__init__.py"):
            if path.exists():
                return path
    return None


def _has_tests(test_file: Path) -> bool:
    """Whether a ``test_*.py`` file defines a test (helpers must not be named ``test_*``)."""
    tree = ast.parse(test_file.read_text("utf-8"))
    nodes = [*tree.body, *(n for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body)]
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        for node in nodes
    )


def test_test_files_mirror_src() -> None:
    """A unit test file ``tests/<pkg path>/test_<module>.py`` tests
    ``src/timkit/<pkg path>/<module>.py`` or the package ``src/timkit/<pkg path>/<module>/``;
    tests that boot real processes live in ``tests/e2e/``."""
    strays, helpers = [], []
    for test_file in sorted(TESTS.rglob("test_*.py")):
        relative = test_file.relative_to(TESTS)
        if not _has_tests(test_file):
            helpers.append(str(relative))
        if relative.parts[0] in NOT_MIRRORED or test_file == RULES:
            continue
        if _tested_module(test_file) is None:
            strays.append(str(relative))
    assert strays == [], "name each after the src module it tests, or move it to tests/e2e"
    assert helpers == [], "a helper module must not be named test_*"
