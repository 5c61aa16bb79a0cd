"""The house rules of docs/architecture.md as a test: who may import whom, and no import cycles.

Every ``import`` statement of the project's packages is read from the source (module level and inside
functions alike), resolved to a project module, and checked against the layers:

    top floor   train, experiments, benchmarks, examples, agreement  (may import anything below)
    callbacks   observe a run
    models      nets, model components, LightningModules, export, checkpoints
    datamodules
    losses, channeldata
    physics     torch, imports nothing of the project outside physics/
    keygen      numpy/scipy, imports nothing of the project outside keygen/

A module may import its own package and packages on lower floors, never upward and never sideways
between physics and keygen. Across all project modules the import graph has no cycle (two modules that
import each other, directly or through others, count; a package's ``__init__`` importing its own
submodules is the one direction allowed, so a submodule importing its package's ``__init__`` is a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FLOOR = {
    "physics": 0, "keygen": 0,
    "losses": 1, "channeldata": 1,
    "datamodules": 2,
    "models": 3,
    "callbacks": 4,
    "train": 5, "experiments": 5, "benchmarks": 5, "examples": 5, "agreement": 5,
}
TOP_FLOOR = {name for name, floor in FLOOR.items() if floor == 5}


def _project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every project package (a package is its ``__init__``)."""
    mods: dict[str, Path] = {}
    for top in FLOOR:
        single = REPO / f"{top}.py"
        if single.is_file():
            mods[top] = single
        for p in sorted((REPO / top).rglob("*.py")) if (REPO / top).is_dir() else []:
            parts = list(p.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


MODULES = _project_modules()


def _resolve(name: str) -> str | None:
    """The project module a dotted import name lands in (longest existing prefix), or None if external."""
    parts = name.split(".")
    if parts[0] not in FLOOR:
        return None
    while parts:
        cand = ".".join(parts)
        if cand in MODULES:
            return cand
        parts.pop()
    return None


def _imports(module: str, path: Path) -> set[str]:
    """Project modules that ``module`` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # "from X import Y" imports X, or the submodule X.Y where that is a module
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in MODULES else stem for a in node.names]
        else:
            continue
        for t in targets:
            r = _resolve(t)
            if r is not None and r != module:
                out.add(r)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_layers_are_found():
    # guards the test itself: the packages it checks exist and it sees their imports
    for top in ("physics", "keygen", "models", "datamodules", "losses", "callbacks", "channeldata", "train"):
        assert any(_top(m) == top for m in MODULES), top
    assert any(_top(t) == "models" for t in GRAPH["train"])


@pytest.mark.parametrize("layer", sorted(FLOOR))
def test_no_layer_imports_upward_or_sideways(layer):
    bad = []
    for m, targets in GRAPH.items():
        if _top(m) != layer:
            continue
        for t in sorted(targets):
            tl = _top(t)
            if tl == layer or (FLOOR[layer] == 5 and tl in TOP_FLOOR):
                continue
            if FLOOR[tl] >= FLOOR[layer]:
                bad.append(f"{m} imports {t} (floor {FLOOR[tl]} >= {FLOOR[layer]})")
    assert not bad, "\n".join(bad)


def test_physics_and_keygen_import_only_themselves():
    for ground in ("physics", "keygen"):
        bad = [f"{m} -> {t}" for m, ts in GRAPH.items() if _top(m) == ground for t in ts if _top(t) != ground]
        assert not bad, bad


def test_no_import_cycles():
    # Tarjan's strongly connected components over the module graph
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_catches_what_it_should(tmp_path):
    # the resolver on hand-made cases: relative imports, 'from pkg import submodule', function-level imports
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from physics import optim\n    import keygen.privacy\n    from . import units\n")
    got = _imports("physics.fake", src)
    assert {"physics.optim", "keygen.privacy", "physics.units"} <= got


#: docs/architecture.md section 2: "no module over ~600 lines" in physics/. Checked for every library package; the NIST
#: SP 800-22 suite (keygen/randomness.py, one test per section of the document) is the one file allowed more.
MAX_LINES = 620
LONGER_ALLOWED = {"keygen.randomness": 800}


def test_no_library_module_is_too_long():
    library = {"physics", "keygen", "losses", "channeldata", "datamodules", "models", "callbacks", "agreement"}
    long = [f"{m}: {n} lines" for m, p in MODULES.items() if _top(m) in library
            and (n := len(p.read_text().splitlines())) > LONGER_ALLOWED.get(m, MAX_LINES)]
    assert not long, long
