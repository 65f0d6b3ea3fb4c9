"""The contract every optimizer keeps: a new program, a full report, one budget, no train/val leaks.

The fake model reads the chat prompt back into fields, so a test knows, for every LM call, the current
inputs, the demos shown and the usage role it was billed under; policies decide the answer from that.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fake_model import Call, FakeModel, data, right, right_with_demos

import lmprog as lp
from lmprog.dataset import data_hash
from lmprog.errors import UsageError
from lmprog.optimizers import BootstrapFewShot, CompileReport, LabeledFewShot, Optimizer, RandomSearch, get_optimizer
from lmprog.predict import Demo


def questions(program: lp.Module) -> set[str]:
    return {d["question"] for p in program.predictors() for d in p.demos}


def state_questions(state: dict[str, Any]) -> set[str]:
    """Questions of the demos in a saved program state (`Candidate.state`)."""
    return {d["fields"]["question"] for p in state.values() for d in p["demos"]}


OPTIMIZERS: dict[str, Callable[[Any], Optimizer]] = {
    "labeled": lambda m: LabeledFewShot(k=2, metric=m, threads=1),
    "bootstrap": lambda m: BootstrapFewShot(m, max_bootstrapped=2, max_labeled=2, threads=1),
    "random_search": lambda m: RandomSearch(m, num_candidates=2, max_bootstrapped=2, max_labeled=2, threads=1),
}


# -- a new program, the original untouched -------------------------------------------------------------------

@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compile_returns_a_new_program_and_leaves_the_original_untouched(name: str) -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    program.demos = [Demo(question="q99", answer="a99")]
    before = program.dump_state()

    compiled = OPTIMIZERS[name](lp.metrics.exact_match).compile(program, data(0, 8), data(10, 14), progress=False)

    assert compiled is not program and compiled.predictors()[0] is not program
    assert program.dump_state() == before
    assert [d.toDict() for d in program.demos] == [{"question": "q99", "answer": "a99"}]
    assert not hasattr(program, "report")
    assert isinstance(compiled.report, CompileReport)
    assert questions(compiled) and questions(compiled) <= {f"q{i}" for i in range(8)}
    compiled.predictors()[0].demos.clear()
    assert len(program.demos) == 1  # the copy shares no demo list with the original


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compile_keeps_the_programs_own_instructions(name: str) -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm, instructions="Answer with the letter a and the digits.")
    compiled = OPTIMIZERS[name](lp.metrics.exact_match).compile(program, data(0, 8), data(10, 14), progress=False)
    assert compiled.predictors()[0].instructions == "Answer with the letter a and the digits."


# -- the report -----------------------------------------------------------------------------------------------

def test_report_lists_every_candidate_with_its_score_ci_and_the_choice(tmp_path: Any) -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    val = data(10, 15)
    compiled = RandomSearch(lp.metrics.exact_match, num_candidates=3, max_bootstrapped=2, max_labeled=2,
                            threads=1).compile(program, data(0, 8), val, progress=False)
    report = compiled.report

    assert len(report.candidates) == 6  # zero-shot, labelled, in-order bootstrapped + 3 sampled
    for c in report.candidates:
        assert c.complete and c.n == len(val) and c.errors == 0
        assert c.score is not None and c.ci is not None
        assert c.ci[0] <= c.score <= c.ci[1]
    zero = next(c for c in report.candidates if c.kind == "zero_shot")
    assert zero.score == 0.0 and zero.n_demos == 0
    best = report.best_candidate
    assert best is report.candidates[report.best]
    assert best.score == max(c.score for c in report.candidates) == 1.0
    assert compiled.dump_state() == best.state
    assert best.name in report.reason
    assert report.seed == 0 and report.wall_time > 0

    text = str(report)
    for c in report.candidates:
        assert c.name in text and f"[{c.ci[0]:.3f}, {c.ci[1]:.3f}]" in text
    assert f"chosen: {report.reason}" in text
    table = report.table().splitlines()
    assert len(table) == 1 + len(report.candidates)
    assert table[1 + report.best].startswith("* ")

    saved = json.loads(report.save(tmp_path / "report.json").read_text())
    assert [c["name"] for c in saved["candidates"]] == [c.name for c in report.candidates]
    assert saved["best"] == report.best and saved["reason"] == report.reason


def test_progress_prints_the_call_estimate_first_and_the_candidate_table_last(capsys: Any) -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=2, threads=1).compile(
        program, data(0, 8), data(10, 13), progress=True)
    err = capsys.readouterr().err
    assert compiled.report.estimated_calls and compiled.report.estimated_calls > 0
    estimate = err.index(f"estimated ~{compiled.report.estimated_calls} LM calls")
    assert err.index(compiled.report.candidates[0].name) > estimate
    assert "chosen:" in err


def judge_policy(call: Call) -> dict[str, Any]:
    return {"verdict": call.inputs["answer"] == call.inputs["reference"]}


@pytest.mark.parametrize("threads", [1, 3])
def test_usage_is_counted_per_role_task_teacher_and_metric(threads: int) -> None:
    model = FakeModel(right_with_demos)
    judge = FakeModel(judge_policy, model="fake/judge")
    program = lp.Predict("question -> answer", lm=model.lm)
    val = data(10, 14)
    compiled = BootstrapFewShot(lp.metrics.Judge(lm=judge.lm), max_bootstrapped=2, max_labeled=2,
                                threads=threads).compile(program, data(0, 8), val, progress=False)
    by_role = compiled.report.usage["by_role"]

    assert compiled.report.best_candidate.score == 1.0  # the judge's verdicts are what was scored
    assert {c.role for c in judge.calls} == {"metric"}
    assert by_role["metric"]["calls"] == len(judge.calls) > 0
    assert by_role["teacher"]["calls"] == len(model.role("teacher")) == 2
    assert by_role["task"]["calls"] == len(model.role("task")) == len(val)
    assert len(model.calls) + len(judge.calls) == compiled.report.usage["total"]["billed_calls"]
    for role in ("task", "teacher", "metric"):
        assert by_role[role]["total_tokens"] > 0 and by_role[role]["cost"] == 0.0  # the fakes are free
    assert set(compiled.report.usage["by_model"]) == {"fake/task", "fake/judge"}


def test_a_metric_calling_a_predict_is_billed_as_metric_during_validation_too() -> None:
    model = FakeModel(right_with_demos)
    checker = FakeModel(lambda call: {"ok": True}, model="fake/checker")
    check = lp.Predict("answer -> ok: bool", lm=checker.lm)

    def checked_match(example: lp.Example, pred: lp.Prediction, trace: Any = None) -> bool:
        return bool(check(answer=pred.answer).ok) and pred.answer == example.answer

    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = BootstrapFewShot(checked_match, max_bootstrapped=2, threads=1).compile(
        program, data(0, 8), data(10, 14), progress=False)
    by_role = compiled.report.usage["by_role"]
    assert by_role["metric"]["calls"] == len(checker.calls)
    assert by_role["task"]["calls"] == len(model.role("task"))


def test_manifest_has_lm_ids_data_hashes_and_versions() -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    train, val = data(0, 8), data(10, 14)
    compiled = BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=2, seed=7, threads=1).compile(
        program, train, val, progress=False)
    report = compiled.report
    m = report.manifest

    assert report.seed == 7 and report.params["seed"] == 7
    assert m["models"] == ["fake/task"]
    assert m["data"]["trainset"] == {"n": 8, "hash": data_hash(train)}
    assert m["data"]["valset"] == {"n": 4, "hash": data_hash(val)}
    assert m["versions"]["lmprog"] == lp.__version__
    assert {"python", "pydantic", "optuna"} <= set(m["versions"])
    assert compiled.provenance["data"] == m["data"] and compiled.provenance["lm"] == "fake/task"

    other = BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=2, seed=7, threads=1).compile(
        program, train, data(10, 13), progress=False)
    assert other.report.manifest["data"]["valset"]["hash"] != m["data"]["valset"]["hash"]
    assert other.report.manifest["data"]["trainset"] == m["data"]["trainset"]


def test_manifest_names_every_lm_the_compile_called() -> None:
    student = FakeModel(right_with_demos, model="fake/student")
    teacher_model = FakeModel(right_with_demos, model="fake/teacher")
    judge = FakeModel(judge_policy, model="fake/judge")
    program = lp.Predict("question -> answer", lm=student.lm)
    teacher = lp.Predict("question -> answer", lm=teacher_model.lm)
    compiled = BootstrapFewShot(lp.metrics.Judge(lm=judge.lm), teacher=teacher, max_bootstrapped=2,
                                threads=1).compile(program, data(0, 8), data(10, 13), progress=False)
    assert teacher_model.calls and judge.calls
    assert set(compiled.report.manifest["models"]) == {"fake/student", "fake/teacher", "fake/judge"}


# -- train/val separation --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_valset_overlapping_the_trainset_is_refused_naming_the_examples(name: str) -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    # Same inputs count as the same example even when the labels differ.
    val = [lp.Example(question="q2", answer="other").with_inputs("question"), *data(10, 12), *data(4, 5)]
    with pytest.raises(UsageError) as err:
        OPTIMIZERS[name](lp.metrics.exact_match).compile(program, data(0, 6), val, progress=False)
    msg = str(err.value)
    assert "2 example(s)" in msg
    assert "trainset[2] = valset[0]" in msg and "trainset[4] = valset[3]" in msg
    assert model.calls == []


@pytest.mark.parametrize("name", ["bootstrap", "random_search"])
def test_without_a_valset_part_of_the_trainset_is_held_out_and_never_used_for_demos(name: str) -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    train = data(0, 12)
    compiled = OPTIMIZERS[name](lp.metrics.exact_match).compile(program, train, progress=False)
    report = compiled.report

    scored_on = {c.inputs["question"] for c in model.role("task")}  # validation is the only task-role work
    assert report.heldout is not None and "held out 3 of 12" in report.heldout
    assert report.heldout in str(report)
    assert len(scored_on) == 3 and scored_on <= {e.question for e in train}
    assert report.manifest["data"]["valset"]["n"] == 3 and report.manifest["data"]["trainset"]["n"] == 9
    assert all(c.n == 3 for c in report.candidates)
    assert any(state_questions(c.state) for c in report.candidates)
    for c in report.candidates:
        assert not state_questions(c.state) & scored_on
    assert not {c.inputs["question"] for c in model.role("teacher")} & scored_on
    assert not {q for c in model.calls for q in c.demo_questions} & scored_on


def cheat(call: Call) -> dict[str, Any]:
    """Answers correctly only when the current input is among the demos: a leak would be rewarded."""
    return {"answer": right(call) if call.inputs["question"] in call.demo_questions else "wrong"}


@pytest.mark.parametrize("name", ["bootstrap", "random_search"])
def test_no_example_is_ever_shown_as_its_own_demo(name: str) -> None:
    model = FakeModel(cheat)
    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = OPTIMIZERS[name](lp.metrics.exact_match).compile(program, data(0, 8), data(10, 14), progress=False)
    report = compiled.report

    assert model.role("teacher") and all(c.demos for c in model.role("teacher"))
    for c in model.calls:
        assert c.inputs["question"] not in c.demo_questions, (c.role, c.inputs, c.demos)
    assert all(c.score == 0.0 for c in report.candidates)
    assert not any(d.kind == "bootstrapped" for p in compiled.predictors() for d in p.demos)
    runs = report.bootstrap.get("runs", [report.bootstrap])
    assert all(r["successes"] == 0 and r["failed_runs"] == r["attempts"] > 0 for r in runs)


# -- one budget per compile ------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:evaluation stopped")
def test_a_budget_stops_the_search_and_the_best_candidate_so_far_is_returned() -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    # zero-shot 4 + labelled 4 + in-order bootstrapped (2 teacher + 4) = 14 calls; the fourth cannot finish.
    compiled = RandomSearch(lp.metrics.exact_match, num_candidates=4, max_bootstrapped=2, max_labeled=2,
                            threads=1).compile(program, data(0, 8), data(10, 14), budget={"max_calls": 16},
                                               progress=False)
    report = compiled.report

    assert report.stopped_by is not None and report.stopped_by.startswith("budget")
    assert f"stopped early: {report.stopped_by}" in str(report)
    assert len(model.calls) == report.usage["total"]["billed_calls"] <= 16
    finished = [c for c in report.candidates if c.complete]
    assert [c.kind for c in finished] == ["zero_shot", "labelled", "bootstrapped"]
    assert len(report.candidates) < 3 + 4
    assert report.best_candidate in finished and report.best_candidate.score == 1.0
    assert compiled.dump_state() == report.best_candidate.state


@pytest.mark.filterwarnings("ignore:evaluation stopped")
def test_the_budget_counts_the_metrics_own_calls() -> None:
    model = FakeModel(right_with_demos)
    judge = FakeModel(judge_policy, model="fake/judge")
    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = RandomSearch(lp.metrics.Judge(lm=judge.lm), num_candidates=4, max_bootstrapped=2, max_labeled=2,
                            threads=1).compile(program, data(0, 8), data(10, 14), budget={"max_calls": 20},
                                               progress=False)
    assert compiled.report.stopped_by is not None and compiled.report.stopped_by.startswith("budget")
    assert judge.calls
    assert len(model.calls) + len(judge.calls) == compiled.report.usage["total"]["billed_calls"] <= 20


@pytest.mark.filterwarnings("ignore:evaluation stopped")
def test_a_budget_holds_when_candidates_are_scored_in_threads() -> None:
    # The four validation rows wait for each other inside the model, so all four calls are in flight at once
    # (a budget that reserves calls lets only two through; those two then stop waiting after a timeout).
    together = threading.Barrier(4, timeout=2)

    def in_step(call: Call) -> dict[str, Any]:
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait()
        return right_with_demos(call)

    model = FakeModel(in_step)
    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = LabeledFewShot(k=2, metric=lp.metrics.exact_match, threads=4).compile(
        program, data(0, 8), data(10, 14), budget={"max_calls": 2}, progress=False)
    assert compiled.report.usage["total"]["billed_calls"] <= 2
    assert len(model.calls) <= 2


def test_a_budget_spent_before_any_candidate_finishes_returns_the_program_unchanged() -> None:
    model = FakeModel(right_with_demos)
    program = lp.Predict("question -> answer", lm=model.lm)
    compiled = BootstrapFewShot(lp.metrics.exact_match, max_bootstrapped=4, threads=1).compile(
        program, data(0, 8), data(10, 14), budget={"max_calls": 2}, progress=False)
    report = compiled.report
    assert report.stopped_by is not None and report.stopped_by.startswith("budget")
    assert len(model.calls) == 2
    assert report.best is None and "no candidate finished" in report.reason
    assert compiled.dump_state() == program.dump_state()


# -- names and errors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls", [
    ("labeled", LabeledFewShot), ("labelled", LabeledFewShot), ("bootstrap", BootstrapFewShot),
    ("bootstrap-few-shot", BootstrapFewShot), ("random_search", RandomSearch), ("Random-Search", RandomSearch),
])
def test_get_optimizer_by_cli_name(name: str, cls: type[Optimizer]) -> None:
    opt = get_optimizer(name, metric=lp.metrics.exact_match, seed=3)
    assert type(opt) is cls and opt.seed == 3 and opt.metric is lp.metrics.exact_match


def test_get_optimizer_passes_its_keywords() -> None:
    opt = get_optimizer("random_search", metric=lp.metrics.exact_match, num_candidates=9)
    assert isinstance(opt, RandomSearch) and opt.num_candidates == 9


def test_an_unknown_optimizer_name_says_which_exist() -> None:
    with pytest.raises(UsageError, match=r"unknown optimizer 'mipro'.*labeled, bootstrap, random_search"):
        get_optimizer("mipro")


@pytest.mark.parametrize("cls", [BootstrapFewShot, RandomSearch])
def test_optimizers_that_score_need_a_metric(cls: type[Optimizer]) -> None:
    with pytest.raises(UsageError, match="needs a metric"):
        cls()
    with pytest.raises(UsageError, match="metric must be a callable"):
        cls("exact_match")


def test_labeled_few_shot_needs_no_metric() -> None:
    assert LabeledFewShot(k=2).metric is None


def test_an_empty_trainset_is_refused() -> None:
    program = lp.Predict("question -> answer", lm=FakeModel(right_with_demos).lm)
    with pytest.raises(UsageError, match="trainset is empty"):
        BootstrapFewShot(lp.metrics.exact_match).compile(program, [], data(0, 3), progress=False)


def test_a_program_that_is_not_a_module_is_refused() -> None:
    def program(question: str) -> lp.Prediction:
        return lp.Prediction(answer="a")

    with pytest.raises(UsageError, match=r"lp\.Module.*got function"):
        BootstrapFewShot(lp.metrics.exact_match).compile(program, data(0, 4), data(10, 12), progress=False)


def test_a_module_without_predictors_is_refused() -> None:
    class Plain(lp.Module):
        def forward(self, question: str) -> lp.Prediction:
            return lp.Prediction(answer="a")

    with pytest.raises(UsageError, match="no predictors"):
        LabeledFewShot().compile(Plain(), data(0, 4), data(10, 12), progress=False)


def test_examples_that_do_not_know_their_inputs_are_refused() -> None:
    program = lp.Predict("question -> answer", lm=FakeModel(right_with_demos).lm)
    bare = [lp.Example(question="q1", answer="a1")]
    with pytest.raises(UsageError, match=r"trainset\[0\].*with_inputs"):
        LabeledFewShot().compile(program, bare, data(10, 12), progress=False)
    with pytest.raises(UsageError, match=r"valset\[0\].*with_inputs"):
        LabeledFewShot().compile(program, data(0, 4), bare, progress=False)
