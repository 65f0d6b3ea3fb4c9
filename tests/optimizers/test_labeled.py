"""LabeledFewShot: k labelled training examples become each predictor's demos, reproducibly by seed."""

from __future__ import annotations

from typing import Any

import pytest
from fake_model import Call, FakeModel, data, right

import lmprog as lp
from lmprog.evaluate import evaluate
from lmprog.optimizers import LabeledFewShot


def q3_teaches(call: Call) -> dict[str, Any]:
    """Answers `a<i>` for `q<i>` only when the prompt shows the demo for q3."""
    return {"answer": right(call) if "q3" in call.demo_questions else "wrong"}


class Q3Model(FakeModel):
    def __init__(self) -> None:
        super().__init__(q3_teaches)

    @property
    def roles(self) -> list[str]:
        return [c.role for c in self.calls]


def demo_questions(program: lp.Module) -> list[str]:
    return [d["question"] for d in program.predictors()[0].demos]


def test_k_labelled_demos_from_the_trainset_without_any_lm_call() -> None:
    model = Q3Model()
    program = lp.Predict("question -> answer", lm=model.lm)
    train = data(0, 10)
    compiled = LabeledFewShot(k=3).compile(program, train, data(10, 13), progress=False)
    demos = compiled.predictors()[0].demos

    assert len(demos) == 3 and len(set(demo_questions(compiled))) == 3
    assert all(d.kind == "labelled" for d in demos)
    by_question = {e.question: e for e in train}
    for d in demos:
        assert d.toDict() == by_question[d.question].toDict()
    assert model.roles == []
    assert compiled.report.usage["total"]["calls"] == 0
    assert len(compiled.report.candidates) == 1 and compiled.report.candidates[0].kind == "labelled"


def test_demos_hold_only_the_predictors_fields() -> None:
    program = lp.Predict("question -> answer", lm=Q3Model().lm)
    compiled = LabeledFewShot(k=2).compile(program, data(0, 6, source="web"), data(10, 12), progress=False)
    assert all(set(d.keys()) == {"question", "answer"} for d in compiled.predictors()[0].demos)


def test_k_larger_than_the_trainset_uses_every_example() -> None:
    program = lp.Predict("question -> answer", lm=Q3Model().lm)
    compiled = LabeledFewShot(k=10).compile(program, data(0, 4), data(10, 12), progress=False)
    assert sorted(demo_questions(compiled)) == ["q0", "q1", "q2", "q3"]


def test_the_same_seed_gives_the_same_demos_and_other_seeds_other_ones() -> None:
    program = lp.Predict("question -> answer", lm=Q3Model().lm)
    train, val = data(0, 20), data(20, 22)

    def demos(seed: int) -> list[str]:
        return demo_questions(LabeledFewShot(k=3, seed=seed).compile(program, train, val, progress=False))

    assert demos(5) == demos(5)
    assert len({tuple(demos(s)) for s in range(5)}) > 1


def test_with_a_metric_the_demo_set_is_scored_on_the_valset_only() -> None:
    model = Q3Model()
    program = lp.Predict("question -> answer", lm=model.lm)
    train, val = data(0, 5), data(10, 14)
    opt = LabeledFewShot(k=5, metric=lp.metrics.exact_match, threads=1)
    compiled = opt.compile(program, train, val, progress=False)
    cand = compiled.report.best_candidate

    assert "q3" in demo_questions(compiled)  # every train example is a demo, the helpful one included
    assert cand.score == 1.0 and cand.n == len(val)
    assert model.roles == ["task"] * len(val)
    assert evaluate(compiled, val, lp.metrics.exact_match, threads=1, progress=False).score == 1.0


def test_only_predictors_the_examples_fit_get_demos() -> None:
    class Classify(lp.Module):
        def __init__(self) -> None:
            self.solve = lp.Predict("question -> answer")
            self.tag = lp.Predict("answer -> category")

        def forward(self, question: str) -> lp.Prediction:
            return self.solve(question=question)

    compiled = LabeledFewShot(k=2).compile(Classify(), data(0, 6), data(10, 12), progress=False)
    demos = {name: p.demos for name, p in compiled.named_predictors()}
    assert len(demos["solve"]) == 2
    assert demos["tag"] == []  # the examples carry no category: nothing to show that predictor


@pytest.mark.parametrize("k", [0, 1])
def test_small_k(k: int) -> None:
    program = lp.Predict("question -> answer", lm=Q3Model().lm)
    compiled = LabeledFewShot(k=k).compile(program, data(0, 6), data(10, 12), progress=False)
    assert len(compiled.predictors()[0].demos) == k
