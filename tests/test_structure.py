"""The shape of the code: no import cycle, engines import nothing above them, no function over 80 lines.

The import graph is read with the standard library's ``ast`` (every ``import``
and ``from ... import``, including those inside functions: a lazy import that
closes a cycle is still a cycle). ``from pkg import name`` counts as importing
``pkg.name`` when that is a module, else ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("upscaler", "server", "export", "training")
#: Where the 80-line rule holds: every package and the benchmark scripts (everything but the tests).
LINE_RULED = (*PACKAGES, "benchmarks")
#: What the engines layer may import besides itself (the layers below it).
RUNTIME_MAY_IMPORT = ("upscaler.models", "upscaler.archs", "upscaler.sysinfo", "upscaler.io")
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _targets(node: ast.AST, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        subs = [f"{node.module}.{a.name}" for a in node.names]
        names = [s for s in subs if s in modules] or [node.module]
    else:
        return []
    found = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in it)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = {t for node in ast.walk(tree) for t in _targets(node, modules) if t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return out


def test_the_cycle_finder_finds_a_cycle_and_only_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_any_package():
    assert cycles(import_graph()) == []


def test_the_engines_layer_imports_nothing_above_it():
    graph = import_graph()
    upward = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("upscaler.runtime")
        for target in targets
        if not target.startswith("upscaler.runtime") and not target.startswith(RUNTIME_MAY_IMPORT)
    }
    assert upward == set()


def test_the_core_never_imports_the_packages_built_on_it():
    graph = import_graph()
    above = ("server", "export", "training")
    wrong = {(m, t) for m, ts in graph.items() if m.startswith("upscaler") for t in ts if t.startswith(above)}
    assert wrong == set()


def _long_functions() -> list[str]:
    out = []
    scripts = {f"benchmarks.{p.stem}": p for p in (ROOT / "benchmarks").glob("*.py")}
    for name, path in {**_modules(), **scripts}.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    out.append(f"{name}.{node.name} ({lines} lines)")
    return sorted(out)


@pytest.mark.parametrize("package", LINE_RULED)
def test_no_function_is_over_80_lines(package):
    assert [f for f in _long_functions() if f.startswith(package)] == []
