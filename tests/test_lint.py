"""The code base stays clean by the project's own rules: ruff (pyproject's [tool.ruff]) and mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="needs lmprog[dev] (ruff)")
def test_ruff_finds_nothing() -> None:
    out = _run("ruff", "check", "lmprog", "optimizers", "programs", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing() -> None:
    pytest.importorskip("mypy", reason="needs lmprog[dev] (mypy)")
    out = _run("mypy", "lmprog", "optimizers")
    assert out.returncode == 0, out.stdout + out.stderr
