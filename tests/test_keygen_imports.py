"""keygen/ is numpy/scipy only and imports nothing of the project outside keygen/ (docs/architecture.md section 2).

Every import statement of every keygen module is read from its syntax tree, those inside functions included,
so an import moved into a function body to dodge the rule still fails here. Allowed: the standard library,
numpy, scipy, ldpc (LDPC decoding), tqdm (progress bar), and keygen's own modules (relative imports).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

KEYGEN = Path(__file__).resolve().parents[1] / "keygen"
ALLOWED_THIRD_PARTY = {"numpy", "scipy", "ldpc", "tqdm"}


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """``(line, top-level module, relative level)`` of every import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name.split(".")[0], 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, (node.module or "").split(".")[0], node.level))
    return out


def test_keygen_imports_only_numpy_scipy_and_itself():
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for path in sorted(KEYGEN.glob("*.py")):
        for line, top, level in _imports(path):
            if level > 1 or (level == 0 and top not in stdlib | ALLOWED_THIRD_PARTY | {"keygen"}):
                bad.append(f"{path.name}:{line} imports {'.' * level}{top}")
    assert not bad, bad


def test_importing_keygen_loads_no_torch_and_nothing_of_the_project():
    code = ("import sys, keygen, keygen.pipeline, keygen.canonical; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'physics', 'models', "
            "'datamodules', 'callbacks', 'losses', 'channeldata', 'agreement', 'train'}))")
    res = subprocess.run([sys.executable, "-c", code], cwd=KEYGEN.parent, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
