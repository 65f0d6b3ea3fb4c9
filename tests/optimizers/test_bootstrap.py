"""BootstrapFewShot: successful traced teacher runs become demos for every predictor they went through.

Fake models here answer correctly only under conditions the optimizer must create (a demo in the prompt, a
fresh rollout), so each test passes only if the optimizer found the helpful demos and attached them.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fake_model import Call, FakeModel, data, right, right_with_demos

import lmprog as lp
from lmprog.evaluate import evaluate
from lmprog.optimizers import BootstrapFewShot


def num(question: str) -> int:
    return int(question[1:])


def kinds(predictor: lp.Predict) -> list[str]:
    return [d.kind for d in predictor.demos]


def compile_(opt: BootstrapFewShot, program: lp.Module, train: list[lp.Example],
             val: list[lp.Example]) -> lp.Module:
    return opt.compile(program, train, val, progress=False)


# -- a single predictor ----------------------------------------------------------------------------------------

def test_demos_that_help_are_found_and_attached() -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    val = data(10, 14)
    assert evaluate(program, val, lp.metrics.exact_match, threads=1, progress=False).score == 0.0

    compiled = compile_(BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=2, max_labeled=2, threads=1),
                        program, data(0, 8), val)
    p = compiled.predictors()[0]

    assert kinds(p) == ["bootstrapped", "bootstrapped"]
    teacher_calls = model.role("teacher")
    assert len(teacher_calls) == 2 and all(c.demos for c in teacher_calls)  # the teacher had labelled demos
    # A bootstrapped demo is the teacher's own answer to that training input.
    assert [d.toDict() for d in p.demos] == [{"question": c.inputs["question"], **c.answer} for c in teacher_calls]
    assert compiled.report.bootstrap["successes"] == 2 and compiled.report.bootstrap["failed_runs"] == 0
    assert compiled.report.best_candidate.score == 1.0
    assert evaluate(compiled, val, lp.metrics.exact_match, threads=1, progress=False).score == 1.0


def test_a_zero_shot_teacher_that_always_fails_leaves_no_demos_and_records_why() -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = compile_(BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=2, max_labeled=0, threads=1),
                        program, data(0, 6), data(10, 12))
    boot = compiled.report.bootstrap

    assert compiled.predictors()[0].demos == []
    assert boot["attempts"] == 6 and boot["successes"] == 0 and boot["failed_runs"] == 6
    assert all(f["error"] == "metric did not pass" for f in boot["failures"])
    assert compiled.report.best_candidate.score == 0.0


def test_a_teacher_showing_a_key_demo_never_shows_an_example_its_own_demo() -> None:
    """The model needs the q3 demo; the teacher has it, but when q3 itself runs it must be hidden."""
    model = FakeModel(lambda c: {"answer": right(c) if "q3" in c.demo_questions else "wrong"})
    program = lp.Predict("question -> answer", lm=model.lm)
    teacher = lp.Predict("question -> answer", lm=model.lm)
    teacher.demos = [lp.Demo(question="q3", answer="a3")]
    compiled = compile_(BootstrapFewShot(lp.metrics.exact_match, teacher=teacher, max_bootstrapped=10,
                                         max_labeled=0, seed=1, threads=1), program, data(0, 6), data(10, 12))
    boot = compiled.report.bootstrap

    assert teacher.demos[0].question == "q3"  # the user's teacher is not modified either
    run_on_q3 = [c for c in model.role("teacher") if c.inputs["question"] == "q3"]
    assert len(run_on_q3) == 1 and run_on_q3[0].demos == []
    assert boot["successes"] == 5 and boot["failed_runs"] == 1 and '"q3"' in boot["failures"][0]["example"]
    assert sorted(d["question"] for d in compiled.predictors()[0].demos) == ["q0", "q1", "q2", "q4", "q5"]


@pytest.mark.parametrize("max_bootstrapped, max_labeled, n_boot, n_labelled", [
    (2, 5, 2, 3),  # labelled demos fill up to max_labeled
    (3, 1, 3, 0),  # bootstrapped demos are kept even beyond max_labeled
    (0, 2, 0, 2),
])
def test_demo_kinds_and_limits(max_bootstrapped: int, max_labeled: int, n_boot: int, n_labelled: int) -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    train = data(0, 10)
    compiled = compile_(BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=max_bootstrapped,
                                         max_labeled=max_labeled, threads=1), program, train, data(10, 13))
    p = compiled.predictors()[0]

    assert kinds(p) == ["bootstrapped"] * n_boot + ["labelled"] * n_labelled
    assert compiled.report.bootstrap["successes"] == n_boot
    assert len(model.role("teacher")) == n_boot  # bootstrapping stops once it has enough
    boot_q = {d["question"] for d in p.demos if d.kind == "bootstrapped"}
    labelled = [d for d in p.demos if d.kind == "labelled"]
    train_rows = {e.question: e.toDict() for e in train}
    assert all(d.toDict() == train_rows[d["question"]] for d in labelled)
    assert not boot_q & {d["question"] for d in labelled}  # no example twice
    assert len({d["question"] for d in p.demos}) == len(p.demos)


@pytest.mark.parametrize("seed", range(4))
def test_labelled_demos_fill_up_from_examples_that_gave_no_bootstrapped_demo(seed: int) -> None:
    # Only runs on q0 and q1 can succeed, so the labelled demos must be q2, q3 and q4.
    model = FakeModel(lambda c: right_with_demos(c) if c.inputs["question"] in ("q0", "q1") else {"answer": "no"})
    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = compile_(BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=2, max_labeled=5, seed=seed,
                                         threads=1), program, data(0, 5), data(10, 12))
    p = compiled.predictors()[0]
    assert kinds(p) == ["bootstrapped"] * 2 + ["labelled"] * 3
    assert {d["question"] for d in p.demos if d.kind == "bootstrapped"} == {"q0", "q1"}
    assert {d["question"] for d in p.demos if d.kind == "labelled"} == {"q2", "q3", "q4"}


def test_metric_threshold_decides_which_runs_pass() -> None:
    def graded(example: lp.Example, pred: lp.Prediction, trace: Any = None) -> float:
        # Full marks on even examples, half on odd ones.
        return (1.0 if num(example.question) % 2 == 0 else 0.5) * (pred.answer == example.answer)

    def boot_questions(threshold: float | None) -> set[str]:
        program = lp.Predict("question -> answer", lm=FakeModel(right_with_demos).lm)
        compiled = compile_(BootstrapFewShot(graded, max_bootstrapped=10, max_labeled=2, metric_threshold=threshold,
                                             threads=1), program, data(0, 8), data(10, 12))
        return {d["question"] for d in compiled.predictors()[0].demos if d.kind == "bootstrapped"}

    assert boot_questions(0.8) == {"q0", "q2", "q4", "q6"}
    assert boot_questions(0.5) == {f"q{i}" for i in range(8)}
    assert boot_questions(None) == {f"q{i}" for i in range(8)}  # any non-zero score passes


def test_failed_runs_are_recorded_not_fatal() -> None:
    class Fragile(lp.Module):
        def __init__(self, lm: lp.LM) -> None:
            self.solve = lp.Predict("question -> answer", lm=lm)

        def forward(self, question: str) -> lp.Prediction:
            if question in ("q1", "q4"):
                raise ValueError(f"cannot handle {question}")
            return self.solve(question=question)

    program = Fragile(FakeModel(right_with_demos).lm)
    compiled = compile_(BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=10, max_labeled=2, threads=1),
                        program, data(0, 6), data(10, 13))
    boot = compiled.report.bootstrap

    assert boot["attempts"] == 6 and boot["successes"] == 4 and boot["failed_runs"] == 2
    assert sorted(f["error"] for f in boot["failures"]) == ["ValueError: cannot handle q1",
                                                          "ValueError: cannot handle q4"]
    boot_q = {d["question"] for d in compiled.solve.demos if d.kind == "bootstrapped"}
    assert boot_q == {"q0", "q2", "q3", "q5"}
    assert compiled.report.best_candidate.score == 1.0


def test_later_rounds_use_a_fresh_rollout_id_and_temperature() -> None:
    # Cache on: a second round with the same prompt would be a cache hit unless its rollout differs.
    model = FakeModel(lambda c: {"answer": right(c) if c.rollout_id is not None else "wrong"},
                      model=f"fake/rounds-{uuid.uuid4().hex}", cache=True)
    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = compile_(BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=10, max_labeled=2, max_rounds=2,
                                         threads=1), program, data(0, 4), data(10, 12))
    boot = compiled.report.bootstrap
    teacher = model.role("teacher")

    assert len(teacher) == 8  # every example in both rounds reached the model: no cache hit in round two
    first, second = teacher[:4], teacher[4:]
    assert all(c.rollout_id is None for c in first)
    assert {c.rollout_id for c in second} == {1}
    assert all(c.params.get("temperature", 0) > 0 for c in second)
    assert [c.inputs["question"] for c in first] == [c.inputs["question"] for c in second]
    assert [f["round"] for f in boot["failures"]] == [0, 0, 0, 0]
    assert boot["successes"] == 4
    assert kinds(compiled.predictors()[0])[:4] == ["bootstrapped"] * 4
    # The student does not inherit the teacher's sampling settings.
    assert compiled.predictors()[0].config == {}
    assert all(c.rollout_id is None and "temperature" not in c.params for c in model.role("task"))


def test_a_second_round_is_not_run_when_the_first_found_enough() -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    compile_(BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=2, max_rounds=3, threads=1),
             program, data(0, 6), data(10, 12))
    assert len(model.role("teacher")) == 2 and all(c.rollout_id is None for c in model.role("teacher"))


# -- two predictors --------------------------------------------------------------------------------------------

class TwoStep(lp.Module):
    """A hint step, then an answer step that reads the hint."""

    def __init__(self, lm: lp.LM) -> None:
        self.hint = lp.Predict("question -> hint", lm=lm)
        self.solve = lp.Predict("question, hint -> answer", lm=lm)

    def forward(self, question: str) -> lp.Prediction:
        hint = self.hint(question=question).hint
        return self.solve(question=question, hint=hint)


def two_step_policy() -> Callable[[Call], dict[str, Any]]:
    counter = itertools.count()

    def policy(call: Call) -> dict[str, Any]:
        if "hint" not in call.inputs:
            return {"hint": f"hint-{next(counter)}"}  # unique per call: ties a demo to the run that made it
        return {"answer": "wrong" if num(call.inputs["question"]) % 3 == 0 else right(call)}

    return policy


def test_one_successful_run_gives_demos_to_both_predictors_from_the_same_run() -> None:
    model = FakeModel(two_step_policy())
    program = TwoStep(model.lm)
    # Only six of the nine examples can pass, so all nine are run and the three others fail the metric.
    compiled = compile_(BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=7, max_labeled=4, threads=1),
                        program, data(0, 9), data(10, 12))
    hint_demos, solve_demos = compiled.hint.demos, compiled.solve.demos
    boot = compiled.report.bootstrap

    assert kinds(compiled.hint) == kinds(compiled.solve) == ["bootstrapped"] * 6
    assert boot["attempts"] == 9 and boot["successes"] == 6
    teacher = model.role("teacher")
    hints_made = {(c.inputs["question"], c.answer["hint"]) for c in teacher if "hint" in c.answer}
    answers_made = {(c.inputs["question"], c.inputs["hint"], c.answer["answer"]) for c in teacher
                    if "answer" in c.answer}
    for h, s in zip(hint_demos, solve_demos, strict=True):
        assert set(h.keys()) == {"question", "hint"} and set(s.keys()) == {"question", "hint", "answer"}
        assert h["question"] == s["question"] and h["hint"] == s["hint"]  # the same run fed both demos
        assert (h["question"], h["hint"]) in hints_made
        assert (s["question"], s["hint"], s["answer"]) in answers_made
        assert s["answer"] == "a" + s["question"][1:]
        assert num(s["question"]) % 3 != 0  # runs that failed the metric give no demos
    assert len({h["hint"] for h in hint_demos}) == 6
    assert sorted(f["example"] for f in boot["failures"]) == ['{"question": "q0"}', '{"question": "q3"}',
                                                             '{"question": "q6"}']
    assert all(f["error"] == "metric did not pass" for f in boot["failures"])
