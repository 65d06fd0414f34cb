"""The tree shows the architecture (DESIGN §2): the rules a reviewer would otherwise check by eye.

- imports flow `services -> projections -> events`, never back, and form no circle;
- no star imports; no application module over 400 lines;
- folders, not file-name prefixes, carry a domain: no `cli_*.py` beside `cli.py`-like siblings.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("events", "projections", "services")
RANK = {"events": 0, "projections": 1, "services": 2}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours that `path` imports, at any depth of the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out.update(n for n in names if n in known)
    return out


def test_no_star_imports() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for top in (*LAYERS, "tests", "ops")
        for p in (ROOT / top).rglob("*.py")
        if any(
            isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
            for n in ast.walk(ast.parse(p.read_text()))
        )
    ]
    assert offenders == []


def test_no_application_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_imports_flow_from_services_to_projections_to_events_never_back() -> None:
    known = modules()
    back = [
        f"{mod} imports {dep}"
        for mod, path in known.items()
        for dep in imports_of(path, known)
        if RANK[dep.split(".")[0]] > RANK[mod.split(".")[0]]
    ]
    assert back == []


def test_modules_import_each_other_in_no_circle() -> None:
    known = modules()
    graph = {m: imports_of(p, known) - {m} for m, p in known.items()}
    # a package's __init__ re-exporting its own modules is containment, not a circle
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not (known[m].name == "__init__.py" and d.startswith(m + "."))}
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    cycles = _cycles(graph)
    assert cycles == []


def test_no_domain_prefix_stands_in_for_a_folder() -> None:
    """`dispatch_run.py` beside `dispatch_wake.py` should be `dispatcher/run.py`, `dispatcher/wake.py`."""
    offenders = []
    for layer in LAYERS:
        for folder in [ROOT / layer, *(p for p in (ROOT / layer).rglob("*") if p.is_dir())]:
            stems = [p.stem for p in folder.glob("*.py") if p.stem != "__init__"]
            prefixes = defaultdict(list)
            for s in stems:
                if "_" in s:
                    prefixes[s.split("_")[0]].append(s)
            for prefix, group in prefixes.items():
                siblings = [s for s in stems if s == prefix or s.rstrip("s") == prefix.rstrip("s")]
                if len(group) > 1 or siblings:
                    offenders.append(f"{folder.relative_to(ROOT)}: {sorted(group + siblings)}")
    assert offenders == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out
