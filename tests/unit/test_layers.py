"""The house's layers, read from the source (every import statement, at module level or inside a function):

    algorithms/                      imports nothing of benchmark/
    benchmark/tasks/                 the registry and envs: nothing of core, datasets, launch, analysis, perf
    benchmark/core/                  one run: nothing of launch, analysis, perf or the CLIs
    benchmark/datasets/              nothing of launch, analysis, perf or the run CLI
    benchmark/launch/                nothing of analysis, perf or the run CLI
    benchmark/analysis/              nothing of launch, perf or the run CLI

and no import cycle between modules, and no import of a ``__main__`` module (a CLI is imported by no one)."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("algorithms", "benchmark")
SKIP = ("benchmark/perf/sidebyside",)  # scripts run beside third-party checkouts, never imported

FORBIDDEN = {
    "algorithms": ("benchmark",),
    "benchmark.tasks": (
        "benchmark.core",
        "benchmark.datasets",
        "benchmark.launch",
        "benchmark.analysis",
        "benchmark.perf",
        "benchmark.run",
        "benchmark.status",
    ),
    "benchmark.core": (
        "benchmark.launch",
        "benchmark.analysis",
        "benchmark.perf",
        "benchmark.run",
        "benchmark.status",
    ),
    "benchmark.datasets": (
        "benchmark.launch",
        "benchmark.analysis",
        "benchmark.perf",
        "benchmark.run",
        "benchmark.status",
    ),
    "benchmark.launch": ("benchmark.analysis", "benchmark.perf", "benchmark.run", "benchmark.status"),
    "benchmark.analysis": ("benchmark.launch", "benchmark.perf", "benchmark.run", "benchmark.status"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def first_party_imports(path: Path, modules: set[str]) -> set[str]:
    """The first-party modules a file imports (``from pkg import name`` counts as ``pkg.name`` where that
    is a module, else as ``pkg``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out.update(n for n in names if n.split(".")[0] in PACKAGES)
    return out


def graph() -> dict[str, set[str]]:
    files = [
        p
        for pkg in PACKAGES
        for p in (REPO / pkg).rglob("*.py")
        if not any(str(p.relative_to(REPO)).startswith(s) for s in SKIP)
    ]
    modules = {module_name(p) for p in files}
    return {module_name(p): first_party_imports(p, modules) for p in files}


def test_the_graph_is_read():  # the checks below would pass vacuously on an empty graph
    g = graph()
    assert "benchmark.core.protocol" in g and "algorithms.moto" in g
    assert "benchmark.core.rundir" in g["benchmark.core.protocol"]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_upward_import(layer):
    bad = [
        f"{m} imports {dep}"
        for m, deps in graph().items()
        if m == layer or m.startswith(layer + ".")
        for dep in sorted(deps)
        for f in FORBIDDEN[layer]
        if dep == f or dep.startswith(f + ".")
    ]
    assert not bad, "\n".join(bad)


def test_no_module_imports_a_main():
    bad = [f"{m} imports {dep}" for m, deps in graph().items() for dep in deps if dep.endswith("__main__")]
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    g = graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
