"""Dependencies between the app's packages point one way: no package imports, even lazily, one that imports it back.

A unit is a package under ``app/`` (``app/jobs``) or a top-level module (``app/channels.py``); ``app/__init__.py``
is the app factory, the one place allowed to know every package.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
COMPOSITION_ROOT = "app"

Graph = dict[str, dict[str, list[str]]]  # unit -> imported unit -> where ("path:line")


def unit_of(module: str) -> str:
    """The package or top-level module a dotted ``app.…`` module name belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else COMPOSITION_ROOT


def imported_modules(node: ast.AST) -> list[str]:
    """The ``app.…`` modules one import statement names (``from app import x`` names ``app.x``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("app.")]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "app":
            return [f"app.{a.name}" for a in node.names]
        if node.module.startswith("app."):
            return [node.module]
    return []


def import_graph(root: Path = APP) -> Graph:
    """Which unit imports which, anywhere in its files (function-level imports included)."""
    graph: Graph = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        module = ".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts)
        source = unit_of(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in map(unit_of, imported_modules(node)):
                if target != source:
                    graph[source][target].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return graph


def cycles(graph: Graph, skip: str = COMPOSITION_ROOT) -> list[list[str]]:
    """The strongly connected groups of more than one unit (Tarjan), ``skip`` left out."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(unit: str) -> None:
        order[unit] = low[unit] = len(order)
        stack.append(unit)
        for target in graph.get(unit, {}):
            if target == skip:
                continue
            if target not in order:
                visit(target)
                low[unit] = min(low[unit], low[target])
            elif target in stack:
                low[unit] = min(low[unit], order[target])
        if low[unit] == order[unit]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == unit:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for unit in sorted(graph):
        if unit != skip and unit not in order:
            visit(unit)
    return groups


def test_the_cycle_finder_finds_direct_and_longer_cycles():
    graph = {"a": {"b": ["x"]}, "b": {"c": ["x"]}, "c": {"a": ["x"]}, "d": {"a": ["x"]}, "e": {"f": ["x"]},
             "f": {"e": ["x"]}, "app": {"a": ["x"], "d": ["x"]}, "g": {"app": ["x"]}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["e", "f"]]


def test_the_import_graph_sees_lazy_and_package_imports(tmp_path):
    pkg = tmp_path / "app"
    (pkg / "jobs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from app import jobs\n")
    (pkg / "jobs" / "__init__.py").write_text("")
    (pkg / "jobs" / "run.py").write_text("def f():\n    from app.channels import x\n    import app.jobs.other\n")
    (pkg / "channels.py").write_text("import json\n")
    graph = import_graph(pkg)
    assert {u: sorted(t) for u, t in graph.items()} == {"app": ["jobs"], "jobs": ["channels"]}
    assert graph["jobs"]["channels"] == ["app/jobs/run.py:2"]


def test_no_two_packages_import_each_other():
    graph = import_graph()
    found = cycles(graph)
    detail = [f"{' <-> '.join(group)}: " + "; ".join(f"{a} -> {b} ({graph[a][b][0]})" for a in group for b in group
                                                      if b in graph.get(a, {}))
              for group in found]
    assert not found, "import cycles between packages:\n" + "\n".join(detail)
