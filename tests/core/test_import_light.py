"""`import lmprog` stays light: no heavy dependency is loaded until it is used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("litellm", "optuna", "llama_cpp", "numpy", "scipy", "httpx")
ROOT = Path(__file__).resolve().parents[2]


def loaded_after(code: str) -> list[str]:
    """The heavy top-level modules present in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                         check=True, timeout=120)
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    return sorted(m for m in HEAVY if m in modules)


def test_import_lmprog_loads_no_heavy_dependency() -> None:
    assert loaded_after("import lmprog") == []


def test_the_core_api_runs_without_heavy_dependencies() -> None:
    code = (
        "import lmprog as lp\n"
        "from lmprog.testing import ScriptedLM\n"
        "p = lp.ChainOfThought('question -> answer: int', lm=ScriptedLM([{'reasoning': 'r', 'answer': 1}]))\n"
        "assert p(question='q').answer == 1\n"
        "lp.Dataset([{'a': 1}], inputs=['a']).split(1.0)\n"
    )
    assert loaded_after(code) == []


def test_the_probe_detects_a_heavy_import() -> None:
    # Guards the test above against passing vacuously (e.g. if the probe read the wrong interpreter's modules).
    assert loaded_after("import json; import lmprog; import sys; sys.modules['numpy'] = json") == ["numpy"]
