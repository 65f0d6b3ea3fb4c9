"""lmprog.metrics: normalized matching, token F1, numbers, field selection, and the LM judge."""

from __future__ import annotations

import pytest

import lmprog as lp
from lmprog import metrics
from lmprog.errors import UsageError
from lmprog.testing import FunctionLM, ScriptedLM


def ex(**fields: object) -> lp.Example:
    return lp.Example(question="Who wrote Hamlet?", **fields).with_inputs("question")


def test_exact_match_normalizes_case_punctuation_articles_and_spaces() -> None:
    assert metrics.exact_match(ex(answer="William Shakespeare"), lp.Prediction(answer="  the william   SHAKESPEARE."))
    assert not metrics.exact_match(ex(answer="William Shakespeare"), lp.Prediction(answer="Marlowe"))
    assert metrics.normalize_text("The  Cat, a hat!") == "cat hat"


def test_exact_match_without_normalization_is_strict() -> None:
    strict = metrics.exact_match(normalize=False)
    assert not strict(ex(answer="Paris"), lp.Prediction(answer="paris"))
    assert strict(ex(answer="Paris"), lp.Prediction(answer=" Paris "))


def test_default_fields_are_the_labels_and_extra_prediction_fields_are_ignored() -> None:
    e = ex(answer="42", topic="math")
    # `reasoning` is not a label; `topic` is missing from the prediction, so only `answer` is compared.
    assert metrics.exact_match(e, lp.Prediction(reasoning="6*7", answer="42"))
    both = lp.Prediction(answer="42", topic="history")
    assert not metrics.exact_match(e, both)  # every compared label must match
    assert metrics.f1(e, both) == pytest.approx(0.5)  # mean over the two fields


def test_field_option_picks_one_field() -> None:
    e = ex(answer="42", topic="math")
    pred = lp.Prediction(answer="42", topic="history")
    assert metrics.exact_match(field="answer")(e, pred)
    assert not metrics.exact_match(field="topic")(e, pred)
    with pytest.raises(UsageError, match="'nope'"):
        metrics.exact_match(field="nope")(e, pred)


def test_no_shared_field_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="field="):
        metrics.exact_match(ex(answer="a"), lp.Prediction(label="a"))


def test_options_on_a_scoring_call_are_refused() -> None:
    with pytest.raises(UsageError, match="configure"):
        metrics.exact_match(ex(answer="a"), lp.Prediction(answer="a"), normalize=False)


def test_token_f1() -> None:
    e = ex(answer="the quick brown fox")
    assert metrics.f1(e, lp.Prediction(answer="quick brown fox")) == pytest.approx(1.0)
    # gold {quick, brown, fox}, pred {quick, red, dog}: p = r = 1/3
    assert metrics.f1(e, lp.Prediction(answer="a quick red dog")) == pytest.approx(1 / 3)
    assert metrics.f1(e, lp.Prediction(answer="nothing shared")) == 0.0


def test_list_of_acceptable_answers_scores_the_best() -> None:
    e = ex(answer=["Shakespeare", "William Shakespeare"])
    assert metrics.exact_match(e, lp.Prediction(answer="william shakespeare"))
    assert metrics.f1(e, lp.Prediction(answer="Shakespeare")) == 1.0


def test_contains_uses_word_boundaries() -> None:
    assert metrics.contains(ex(answer="Paris"), lp.Prediction(answer="It is Paris, France."))
    assert not metrics.contains(ex(answer="no"), lp.Prediction(answer="I know"))


def test_numeric_tolerance_and_number_extraction() -> None:
    close = metrics.numeric(tolerance=0.01)
    assert close(ex(answer=3.14159), lp.Prediction(answer="pi is about 3.14"))
    assert not close(ex(answer=3.2), lp.Prediction(answer="3.14"))
    assert metrics.numeric()(ex(answer=1234), lp.Prediction(answer="The total is 1,234."))
    assert not metrics.numeric()(ex(answer=5), lp.Prediction(answer="no number"))
    assert metrics.numeric(relative=0.1)(ex(answer=100), lp.Prediction(answer="105"))
    with pytest.raises(UsageError):
        metrics.numeric(tolerance=-1)


def test_judge_verdicts_become_scores_and_calls_are_labelled_metric() -> None:
    lm = ScriptedLM([{"verdict": True}, {"verdict": False}])
    judge = metrics.Judge(lm=lm)
    e = ex(answer="William Shakespeare")
    with lp.track() as t:
        assert judge(e, lp.Prediction(answer="Shakespeare")) == 1.0
        assert judge(e, lp.Prediction(answer="Marlowe")) == 0.0
    assert set(t.by("role")) == {"metric"} and t.totals.calls == 2


def test_judge_sees_question_reference_and_answer() -> None:
    seen: list[str] = []

    def fn(messages: list[dict], request: object = None, **params: object) -> dict:
        seen.append("\n".join(m["content"] for m in messages))
        return {"verdict": True}

    metrics.Judge(lm=FunctionLM(fn))(ex(answer="William Shakespeare"), lp.Prediction(answer="Bill S."))
    assert "Who wrote Hamlet?" in seen[0] and "William Shakespeare" in seen[0] and "Bill S." in seen[0]


def test_judge_stays_out_of_the_programs_trace_and_is_compilable() -> None:
    judge = metrics.Judge(lm=ScriptedLM([{"verdict": True}]))
    trace: list = []
    with lp.context(trace=trace):
        judge(ex(answer="a"), lp.Prediction(answer="a"))
    assert trace == []
    [(name, predictor)] = judge.named_predictors()
    assert isinstance(predictor, lp.Predict) and predictor is judge.program
    assert "verdict" in predictor.signature.output_fields


def test_judge_with_a_numeric_score_signature() -> None:
    judge = metrics.Judge("question, reference, answer -> verdict: float", lm=ScriptedLM([{"verdict": 0.75}]))
    assert judge(ex(answer="a"), lp.Prediction(answer="b")) == pytest.approx(0.75)
