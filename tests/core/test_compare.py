"""lp.compare: paired difference with CI, the right paired test, flips, and refusal of mismatched results."""

from __future__ import annotations

from pathlib import Path

import pytest

import lmprog as lp
from lmprog import stats
from lmprog.compare import compare
from lmprog.errors import UsageError
from lmprog.eval_result import EvalResult, Row


def examples(n: int) -> list[lp.Example]:
    return [lp.Example(question=f"q{i}", answer=str(i)).with_inputs("question") for i in range(n)]


def result(scores: list[float | str | None], name: str = "", exs: list[lp.Example] | None = None) -> EvalResult:
    """A constructed result: a number is a completed row, "error" an error row, None a row that did not run."""
    exs = exs or examples(len(scores))
    rows = []
    for i, (ex, s) in enumerate(zip(exs, scores, strict=True)):
        if s == "error":
            rows.append(Row(i, ex, "error", error=RuntimeError("x"), error_info={"type": "RuntimeError"}))
        elif s is None:
            rows.append(Row(i, ex, "not_run"))
        else:
            rows.append(Row(i, ex, "ok", prediction=lp.Prediction(answer="?"), score=float(s)))
    return EvalResult(rows, program=name)


def test_flip_counts_on_constructed_results() -> None:
    a = result([1, 1, 0, 0, 1, 0, 1, 1], "base")
    b = result([1, 0, 1, 1, 1, 0, 0, 1], "compiled")
    c = compare(a, b)
    assert [f.index for f in c.positive_flips] == [2, 3]  # wrong in a, right in b
    assert [f.index for f in c.negative_flips] == [1, 6]  # right in a, wrong in b: regressions
    assert c.positive_flips[0].example.question == "q2"
    assert c.diff == pytest.approx(0.0) and c.n == 8
    assert c.test == "exact McNemar" and c.p_value == pytest.approx(stats.mcnemar_exact(2, 2)) == 1.0


def test_a_clear_improvement_is_significant_with_a_positive_interval() -> None:
    a = result([0] * 30 + [1] * 20)
    b = result([1] * 25 + [0] * 5 + [1] * 20)
    c = compare(a, b, names=("v1", "v2"))
    assert c.diff == pytest.approx(0.5) and 0 < c.ci.low < 0.5 < c.ci.high
    assert c.p_value == pytest.approx(stats.mcnemar_exact(0, 25)) and c.significant
    text = str(c)
    assert "v2 vs v1" in text and "b is better" in text and "25 wrong→right, 0 right→wrong" in text
    assert "row 0:" in text and '"question": "q0"' in text


def test_non_binary_scores_use_the_permutation_test_and_a_threshold_for_flips() -> None:
    a = result([0.2, 0.4, 0.9, 0.6, 0.1, 0.55])
    b = result([0.3, 0.7, 0.95, 0.3, 0.2, 0.55])
    c = compare(a, b)
    assert c.test == "paired permutation" and 0.0 < c.p_value <= 1.0
    assert [f.index for f in c.positive_flips] == [1] and [f.index for f in c.negative_flips] == [3]
    c2 = compare(a, b, threshold=0.25)
    assert [f.index for f in c2.positive_flips] == [0] and c2.negative_flips == []
    assert "right means score >= 0.5" in str(c)


def test_error_rows_count_as_wrong_by_default_or_drop_the_pair() -> None:
    a = result([1, 1, 1, 0, 1])
    b = result([1, "error", 1, 1, 1])
    zero = compare(a, b)
    assert [f.index for f in zero.negative_flips] == [1] and zero.n == 5 and zero.dropped == 0
    assert zero.negative_flips[0].error_b == {"type": "RuntimeError"}
    excl = compare(a, b, errors="exclude")
    assert excl.negative_flips == [] and excl.n == 4 and excl.dropped == 1
    assert "errors scored 0" in str(zero) and "excluded pairwise; 1 pairs dropped" in str(excl)


def test_rows_that_did_not_run_are_dropped() -> None:
    c = compare(result([1, 0, 1, 1]), result([1, 1, None, None]))
    assert c.n == 2 and c.dropped == 2 and [f.index for f in c.positive_flips] == [1]


def test_mismatched_results_are_refused_with_the_mismatch_named() -> None:
    with pytest.raises(UsageError, match="a has 3 rows, b has 4"):
        compare(result([1, 0, 1]), result([1, 0, 1, 1]))
    other = [lp.Example(question="zzz", answer="0").with_inputs("question")] + examples(3)[1:]
    with pytest.raises(UsageError, match="row 0 differs.*zzz"):
        compare(result([1, 0, 1]), result([1, 0, 1], exs=other))


def test_same_examples_in_another_order_are_paired_by_content() -> None:
    exs = examples(4)
    a = result([1, 0, 0, 1], exs=exs)
    b = result([1, 1, 0, 0], exs=[exs[3], exs[2], exs[1], exs[0]])  # b: q3, q2 right; q1, q0 wrong
    c = compare(a, b)
    assert [f.example.question for f in c.positive_flips] == ["q2"]
    assert [f.example.question for f in c.negative_flips] == ["q0"]


def test_compare_works_on_results_loaded_from_disk(tmp_path: Path) -> None:
    a = lp_evaluate(lambda question: lp.Prediction(answer="0"), examples(6))
    b = lp_evaluate(lambda question: lp.Prediction(answer=question[1:]), examples(6))
    a.save(tmp_path / "a.json")
    c = compare(EvalResult.load(tmp_path / "a.json"), b)
    assert len(c.positive_flips) == 5 and c.negative_flips == [] and c.to_dict()["positive_flips"][0]["index"] == 1


def lp_evaluate(program: object, data: list[lp.Example]) -> EvalResult:
    from lmprog import metrics
    from lmprog.evaluate import evaluate

    return evaluate(program, data, metrics.exact_match, progress=False)  # type: ignore[arg-type]
