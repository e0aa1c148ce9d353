"""The README's examples run as written against the real server (only the
address is replaced)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Server

README = Path(__file__).resolve().parents[1] / "README.md"
TOP_README = Path(__file__).resolve().parents[3] / "README.md"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def blocks() -> list[str]:
    found = python_blocks(README)
    # The asyncio fragment is not a whole program; the two examples are.
    return [b for b in found if "Client(" in b and "async with" not in b]


def test_readme_has_the_two_examples() -> None:
    b = blocks()
    assert len(b) == 2
    # "A 20-line bandit example and a 20-line tuning loop."
    assert all(len(x.strip().splitlines()) <= 22 for x in b), [len(x.splitlines()) for x in b]


@pytest.mark.parametrize("index", [0, 1], ids=["bandit", "tuning"])
def test_readme_example_runs(server: Server, index: int, tmp_path: Path) -> None:
    code = blocks()[index].replace("127.0.0.1:50051", server.target)
    # Unique names per run (the session server outlives one test).
    code = code.replace('"checkout-button"', f'"checkout-button-{tmp_path.name}"')
    code = code.replace('"service-tuning"', f'"service-tuning-{tmp_path.name}"')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if index == 0:
        assert "P(best)" in r.stdout and "canary gate:" in r.stdout
    else:
        assert re.search(r"best p95 [0-9.]+ ms with \{", r.stdout), r.stdout


def test_top_readme_example_runs(server: Server, tmp_path: Path) -> None:
    """The repository README's Python section."""
    (code,) = python_blocks(TOP_README)
    code = code.replace("127.0.0.1:50051", server.target)
    code = code.replace('"checkout"', f'"checkout-{tmp_path.name}"')
    code = code.replace('"quad"', f'"quad-{tmp_path.name}"')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
