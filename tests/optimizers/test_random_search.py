"""RandomSearch: zero-shot, labelled and bootstrapped demo sets scored on the valset; the best wins, ties go
to fewer demos; finished candidates live in an optuna storage so a stopped or killed compile resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_model import FakeModel, Killed, data, right, right_with_demos, right_with_q3

import lmprog as lp
from lmprog.errors import ProviderError
from lmprog.evaluate import evaluate
from lmprog.optimizers import RandomSearch


def demo_questions(state: dict[str, Any]) -> set[str]:
    """Questions of the demos in a saved program state (`Candidate.state`)."""
    return {d["fields"]["question"] for p in state.values() for d in p["demos"]}


def demo_kinds(state: dict[str, Any]) -> set[str]:
    return {d["kind"] for p in state.values() for d in p["demos"]}


def search(model: FakeModel, *, num_candidates: int = 4, run_dir: Path | None = None, seed: int = 0,
           budget: dict[str, Any] | None = None, train: tuple[int, int] = (0, 8)) -> lp.Module:
    program = lp.Predict("question -> answer", lm=model.lm)
    opt = RandomSearch(lp.metrics.exact_match, num_candidates=num_candidates, max_bootstrapped=3, max_labeled=3,
                       seed=seed, threads=1)
    return opt.compile(program, data(*train), data(10, 14), budget=budget, run_dir=run_dir, progress=False)


# -- what is searched and what wins ----------------------------------------------------------------------------

def test_candidates_are_zero_shot_labelled_and_bootstrapped_sets_each_scored_with_a_ci() -> None:
    compiled = search(FakeModel(right_with_demos), num_candidates=4)
    report = compiled.report
    cands = report.candidates

    assert len(cands) == 3 + 4
    assert [c.kind for c in cands[:3]] == ["zero_shot", "labelled", "bootstrapped"]
    assert {c.kind for c in cands[3:]} == {"labelled", "bootstrapped"}
    for c in cands:
        assert c.complete and c.n == 4 and c.ci is not None and c.ci[0] <= c.score <= c.ci[1]
        assert c.n_demos == sum(len(p["demos"]) for p in c.state.values())
        if c.kind == "zero_shot":
            assert c.n_demos == 0
        elif c.kind == "labelled":
            assert c.n_demos > 0 and demo_kinds(c.state) == {"labelled"}
        else:
            assert "bootstrapped" in demo_kinds(c.state)
    assert len({c.n_demos for c in cands}) > 2  # several sizes
    assert len(report.bootstrap["runs"]) == sum(c.kind == "bootstrapped" for c in cands)
    text = str(report)
    assert all(c.name in text for c in cands)


def test_the_best_candidate_wins() -> None:
    model = FakeModel(right_with_q3)
    compiled = search(model, num_candidates=6, train=(0, 6))
    cands = compiled.report.candidates
    with_key = [c for c in cands if "q3" in demo_questions(c.state)]
    without = [c for c in cands if "q3" not in demo_questions(c.state)]
    assert with_key and without  # the search saw both kinds of set

    assert all(c.score == 1.0 for c in with_key) and all(c.score == 0.0 for c in without)
    assert compiled.report.best_candidate in with_key
    assert "q3" in {d["question"] for d in compiled.predictors()[0].demos}
    assert evaluate(compiled, data(10, 14), lp.metrics.exact_match, threads=1, progress=False).score == 1.0


def test_ties_go_to_fewer_demos() -> None:
    compiled = search(FakeModel(right_with_demos), num_candidates=6)
    cands = compiled.report.candidates
    top = [c for c in cands if c.score == 1.0]
    assert len({c.n_demos for c in top}) > 1  # a real tie between sets of different sizes

    best = compiled.report.best_candidate
    assert best.score == 1.0 and best.n_demos == min(c.n_demos for c in top)
    assert best is next(c for c in cands if c.score == 1.0 and c.n_demos == best.n_demos)  # then the earliest
    assert "fewest demos wins" in compiled.report.reason
    assert len(compiled.predictors()[0].demos) == best.n_demos


def test_zero_shot_wins_a_tie_with_every_demo_set() -> None:
    compiled = search(FakeModel(lambda c: {"answer": right(c)}), num_candidates=3)
    assert all(c.score == 1.0 for c in compiled.report.candidates)
    assert compiled.report.best_candidate.kind == "zero_shot"
    assert compiled.predictors()[0].demos == []


# -- resuming --------------------------------------------------------------------------------------------------

def test_a_finished_search_resumes_from_its_run_dir_without_lm_calls(tmp_path: Path) -> None:
    first_model = FakeModel(right_with_q3)
    first = search(first_model, run_dir=tmp_path, train=(0, 6))
    assert (tmp_path / "search.db").exists()
    assert first.report.manifest["search_storage"].startswith("sqlite:///")
    assert not any(c.resumed for c in first.report.candidates) and first_model.calls

    again_model = FakeModel(right_with_q3)
    again = search(again_model, run_dir=tmp_path, train=(0, 6))

    assert again_model.calls == []  # neither task nor teacher calls: every candidate came from storage
    assert again.report.usage["total"]["calls"] == 0
    assert all(c.resumed for c in again.report.candidates)
    assert [(c.name, c.score, c.ci, c.n_demos) for c in again.report.candidates] == [
        (c.name, c.score, c.ci, c.n_demos) for c in first.report.candidates]
    assert again.report.best == first.report.best
    assert again.dump_state() == first.dump_state()
    assert any("resumed" in note for note in again.report.notes)


def test_a_different_search_in_the_same_run_dir_starts_afresh(tmp_path: Path) -> None:
    search(FakeModel(right_with_demos), run_dir=tmp_path, seed=0)
    other = FakeModel(right_with_demos)
    compiled = search(other, run_dir=tmp_path, seed=1)
    assert not any(c.resumed for c in compiled.report.candidates) and other.role("task")


def test_a_search_with_another_lm_does_not_reuse_scores(tmp_path: Path) -> None:
    search(FakeModel(right_with_demos, model="fake/small"), run_dir=tmp_path)
    bigger = FakeModel(right_with_demos, model="fake/big")
    compiled = search(bigger, run_dir=tmp_path)
    assert not any(c.resumed for c in compiled.report.candidates)


def test_a_killed_compile_resumes_with_its_finished_candidates(tmp_path: Path) -> None:
    # zero-shot takes calls 1-4 and labelled 5-8; the process dies during the in-order bootstrapped set.
    dying = FakeModel(right_with_q3, die_at=11)
    with pytest.raises(Killed):
        search(dying, run_dir=tmp_path, train=(0, 6))
    assert len(dying.calls) == 10

    resumed_model = FakeModel(right_with_q3)
    resumed = search(resumed_model, run_dir=tmp_path, train=(0, 6))
    cands = resumed.report.candidates
    assert [c.resumed for c in cands] == [True, True] + [False] * (len(cands) - 2)
    assert len(resumed_model.role("task")) == 4 * (len(cands) - 2)  # only unfinished candidates were scored

    fresh = search(FakeModel(right_with_q3), run_dir=tmp_path / "fresh", train=(0, 6))
    assert [(c.name, c.score) for c in cands] == [(c.name, c.score) for c in fresh.report.candidates]
    assert resumed.dump_state() == fresh.dump_state()


def test_a_candidate_scored_during_an_lm_outage_is_scored_again_on_resume(tmp_path: Path) -> None:
    # Call 2 is the zero-shot candidate's second validation row: the provider fails it (a 400 is not retried).
    outage = FakeModel(right_with_q3, die_at=2, die=lambda: ProviderError("provider down", status_code=400))
    first = search(outage, run_dir=tmp_path, train=(0, 6))
    zero = first.report.candidates[0]
    assert zero.name == "zero-shot" and zero.errors == 1
    assert any("LM errors" in note for note in first.report.notes)

    again = search(FakeModel(right_with_q3), run_dir=tmp_path, train=(0, 6))
    cands = again.report.candidates
    assert not cands[0].resumed and cands[0].errors == 0
    assert all(c.resumed for c in cands[1:])


@pytest.mark.filterwarnings("ignore:evaluation stopped")
def test_a_compile_stopped_by_its_budget_resumes_where_it_stopped(tmp_path: Path) -> None:
    stopped_model = FakeModel(right_with_demos)
    stopped = search(stopped_model, run_dir=tmp_path, budget={"max_calls": 15})
    report = stopped.report
    finished = [c for c in report.candidates if c.complete]
    assert report.stopped_by is not None and report.stopped_by.startswith("budget")
    assert len(stopped_model.calls) <= 15 and 0 < len(finished) < 3 + 4
    assert stopped.dump_state() == report.best_candidate.state

    model = FakeModel(right_with_demos)
    resumed = search(model, run_dir=tmp_path)
    cands = resumed.report.candidates
    assert resumed.report.stopped_by is None and len(cands) == 3 + 4
    assert [c.name for c in cands if c.resumed] == [c.name for c in finished]
    assert len(model.role("task")) == 4 * (len(cands) - len(finished))
    assert resumed.report.best_candidate.score == 1.0


def test_ctrl_c_while_scoring_stops_the_search_and_keeps_what_finished() -> None:
    model = FakeModel(right_with_demos, die_at=7, die=KeyboardInterrupt)  # inside the labelled candidate
    with pytest.warns(UserWarning, match="interrupted"):
        compiled = search(model, num_candidates=4)
    report = compiled.report
    assert report.stopped_by is not None and "interrupted" in report.stopped_by
    assert len(model.calls) == 6  # nothing ran after the interrupt
    assert [c.kind for c in report.candidates if c.complete] == ["zero_shot"]
