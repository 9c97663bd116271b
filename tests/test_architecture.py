"""The package's shape: one job per module, layers that import downwards only.

These checks read the source (no imports), so they see function-level imports too — a
lazy import that closes a circle is still a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("credrot", "credrot_sim", "credrot_hooks", "pytest_credrot", "credential_rotation")
#: What the core may never import: the surfaces built on it, and the test double.
SURFACES = ("credrot.cli", "pytest_credrot", "credrot_hooks")
#: The only production modules that may load the simulator: the ones that show it.
SIM_USERS = frozenset({"credrot.demo"})
MAX_MODULE_LINES = 460
MAX_CLASS_LINES = 330


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


MODULES = dict(_modules())


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (``credrot.pool.rotation.Lease`` -> module)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    found.add(target)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                target = _resolve(f"{node.module}.{alias.name}") or _resolve(node.module)
                if target:
                    found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    # a package's __init__ is imported on the way to any of its modules: not an edge
    return {t for t in found if not module.startswith(t + ".")}


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = walk(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state:
            found = walk(module)
            if found:
                return found
    return None


def test_no_import_circle() -> None:
    cycle = _cycle()
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def _is_core(module: str) -> bool:
    surface = ("credrot.cli", "credrot.__main__", "credrot_")
    return module.startswith("credrot") and not module.startswith(surface)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _is_core(m)))
def test_the_core_imports_no_surface_and_no_simulator(module: str) -> None:
    bad = {t for t in GRAPH[module] if t.startswith(SURFACES)}
    assert not bad, f"{module} imports surfaces {sorted(bad)}"
    if module not in SIM_USERS:
        sim = {t for t in GRAPH[module] if t.startswith("credrot_sim")}
        assert not sim, f"{module} imports the simulator {sorted(sim)}"


def test_surfaces_reach_the_simulator_only_through_the_demo() -> None:
    for module, targets in GRAPH.items():
        if module.startswith(("credrot_sim", "credrot.demo")):
            continue
        assert not {t for t in targets if t.startswith("credrot_sim")}, module


def test_the_simulator_is_stdlib_only() -> None:
    for module, targets in GRAPH.items():
        if module.startswith("credrot_sim"):
            assert all(t.startswith("credrot_sim") for t in targets), (module, targets)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_classes_stay_small(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_MODULE_LINES, f"{module} is over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{module}.{node.name} is {size} lines"


def test_the_checks_see_a_circle_when_there_is_one() -> None:
    saved = dict(GRAPH)
    try:
        GRAPH["credrot.kinds"] = {*GRAPH["credrot.kinds"], "credrot.classify"}
        assert _cycle() is not None
    finally:
        GRAPH.clear()
        GRAPH.update(saved)
