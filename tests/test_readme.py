"""The README's quick start runs and prints exactly the numbers the README shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks_after(heading: str) -> list[tuple[str, str]]:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)[:2]


def test_quick_start_prints_the_readme_numbers():
    (lang, code), (_, shown) = _blocks_after("## Quick start")
    assert lang == "python"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README quick start", "exec"), {})
    assert out.getvalue().strip() == shown.strip()


def test_quick_start_matches_examples_script():
    (_, code), _ = _blocks_after("## Quick start")
    script = (README.parent / "examples" / "quickstart.py").read_text()
    assert code.strip() in script
