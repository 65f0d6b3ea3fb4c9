"""lp.evaluate: rows in order, errors kept and counted as stated, partial results, slices, reports."""

from __future__ import annotations

import csv
import io
import json
import random
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

import lmprog as lp
from lmprog import metrics
from lmprog.errors import UsageError
from lmprog.eval_result import EvalResult
from lmprog.evaluate import evaluate
from lmprog.predict import Demo
from lmprog.testing import ScriptedLM


def dataset(n: int = 10) -> list[lp.Example]:
    return [lp.Example(question=f"q{i}", answer=str(i), category="even" if i % 2 == 0 else "odd")
            .with_inputs("question") for i in range(n)]


def echo(question: str) -> lp.Prediction:
    return lp.Prediction(answer=question[1:])


def wrong_on(*bad: int):
    def program(question: str) -> lp.Prediction:
        i = int(question[1:])
        return lp.Prediction(answer="wrong" if i in bad else str(i))
    return program


def fails_on(*bad: int, exc: type[Exception] = ValueError):
    def program(question: str) -> lp.Prediction:
        i = int(question[1:])
        if i in bad:
            raise exc(f"boom on {i}")
        return lp.Prediction(answer=str(i))
    return program


def test_score_ci_and_rows_in_dataset_order() -> None:
    r = evaluate(wrong_on(1, 2, 3), dataset(10), metrics.exact_match, threads=1, progress=False)
    assert r.score == pytest.approx(0.7) and r.n == 10
    assert r.ci.low < 0.7 < r.ci.high and 0.0 <= r.ci.low and r.ci.high <= 1.0
    assert [row.index for row in r.rows] == list(range(10))
    assert [row.score for row in r.rows][:5] == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert r.rows[4].prediction.answer == "4" and r.rows[4].latency is not None
    assert r.complete and not r.interrupted and r.errors == []


def test_ci_level_and_seed_are_honoured() -> None:
    data = dataset(30)
    r95 = evaluate(wrong_on(*range(0, 30, 3)), data, metrics.exact_match, progress=False)
    r80 = evaluate(wrong_on(*range(0, 30, 3)), data, metrics.exact_match, progress=False, ci_level=0.8)
    assert r80.ci.high - r80.ci.low < r95.ci.high - r95.ci.low


@pytest.mark.parametrize("threads", [1, 4])
def test_error_rows_are_kept_and_counted_as_zero_by_default(threads: int) -> None:
    r = evaluate(fails_on(2, 5), dataset(10), metrics.exact_match, threads=threads, progress=False)
    assert [row.index for row in r.errors] == [2, 5]
    assert isinstance(r.errors[0].error, ValueError) and "boom on 2" in str(r.errors[0].error)
    assert r.errors[0].error_info["stage"] == "program" and r.errors[0].score is None
    assert r.error_policy == "zero" and r.n == 10
    assert r.score == pytest.approx(0.8)  # 8 right out of 10, errors scored 0
    assert r.score_completed == pytest.approx(1.0)  # 8 of 8 completed rows
    assert "2 errors counted as 0" in r.summary()


def test_error_rows_excluded_convention() -> None:
    r = evaluate(fails_on(2, 5), dataset(10), metrics.exact_match, errors="exclude", progress=False)
    assert r.n == 8 and r.score == pytest.approx(1.0) and len(r.errors) == 2
    assert "2 errors excluded" in r.summary()
    with pytest.raises(UsageError, match="'zero'"):
        evaluate(echo, dataset(2), metrics.exact_match, errors="ignore")


def test_a_metric_that_raises_or_returns_junk_makes_an_error_row() -> None:
    def metric(example: lp.Example, pred: lp.Prediction, trace: object = None) -> object:
        if example.answer == "1":
            raise RuntimeError("metric broke")
        return None if example.answer == "2" else True

    r = evaluate(echo, dataset(4), metric, progress=False)
    assert [(row.index, row.error_info["stage"]) for row in r.errors] == [(1, "metric"), (2, "metric")]
    assert r.errors[0].prediction.answer == "1"  # the program's answer is kept even though scoring failed
    assert "bool or a number" in r.errors[1].error_info["message"]


@pytest.mark.parametrize("threads", [1, 3])
def test_keyboard_interrupt_returns_the_partial_result(threads: int) -> None:
    k = 6

    def program(question: str) -> lp.Prediction:
        i = int(question[1:])
        if i == k:
            raise KeyboardInterrupt
        if threads > 1 and i > k:
            time.sleep(0.2)  # later rows are still running or queued when the interrupt arrives
        return lp.Prediction(answer=str(i))

    with pytest.warns(UserWarning, match="interrupted"):
        r = evaluate(program, dataset(20), metrics.exact_match, threads=threads, progress=False)
    assert r.interrupted and not r.complete
    done = [row.index for row in r.rows if row.status == "ok"]
    assert set(range(k)) <= set(done) and k not in done
    assert r.rows[k].status == "not_run" and len(r.not_run) == 20 - len(done)
    assert r.score == pytest.approx(1.0) and r.n == len(done)  # not-run rows count nowhere
    assert [row.index for row in r.rows] == list(range(20))


def test_threads_keep_dataset_order_when_latency_varies() -> None:
    rng = random.Random(0)
    delays = {f"q{i}": rng.uniform(0, 0.03) for i in range(40)}
    finished: list[int] = []
    lock = threading.Lock()

    def program(question: str) -> lp.Prediction:
        time.sleep(delays[question])
        with lock:
            finished.append(int(question[1:]))
        return lp.Prediction(answer=question[1:])

    r = evaluate(program, dataset(40), metrics.exact_match, threads=8, progress=False)
    assert finished != sorted(finished)  # the threads really did finish out of order
    assert [row.index for row in r.rows] == list(range(40))
    assert [row.prediction.answer for row in r.rows] == [str(i) for i in range(40)]
    assert r.score == 1.0


def test_workers_see_the_callers_context_and_usage_is_totalled() -> None:
    lm = ScriptedLM({"q": {"answer": "x"}})
    program = lp.Predict("question -> answer")
    with lp.context(lm=lm):
        r = evaluate(program, dataset(6), metrics.exact_match, threads=3, progress=False)
    assert r.errors == [] and lm.calls == 6
    assert r.calls == 6 and all(len(row.usage) == 1 for row in r.rows)
    assert r.usage["by_role"]["task"]["calls"] == 6


def test_max_errors_stops_early_and_says_so() -> None:
    with pytest.warns(UserWarning, match="max_errors"):
        r = evaluate(fails_on(*range(10)), dataset(10), metrics.exact_match, threads=1, max_errors=3,
                     progress=False)
    assert len(r.errors) == 3 and len(r.not_run) == 7 and "max_errors" in r.stopped
    with pytest.raises(UsageError, match="max_errors"):
        evaluate(echo, dataset(2), metrics.exact_match, max_errors=0)


def test_an_exhausted_budget_stops_the_run_and_keeps_what_ran() -> None:
    lm = ScriptedLM({"q": {"answer": "x"}})
    with lp.context(lm=lm), lp.budget(max_calls=3), pytest.warns(UserWarning, match="budget"):
        r = evaluate(lp.Predict("question -> answer"), dataset(8), metrics.exact_match, threads=1, progress=False)
    assert len(r.completed) == 3 and len(r.not_run) == 5 and r.errors == []
    assert r.stopped.startswith("budget")


def test_examples_must_know_their_inputs() -> None:
    with pytest.raises(UsageError, match="with_inputs"):
        evaluate(echo, [lp.Example(question="q1", answer="1")], metrics.exact_match, progress=False)


def test_slices_give_a_score_and_interval_per_value() -> None:
    r = evaluate(wrong_on(1, 3, 5), dataset(10), metrics.exact_match, progress=False)
    s = r.by("category")
    assert set(s) == {"even", "odd"}
    assert s["even"].score == 1.0 and s["even"].n == 5
    assert s["odd"].score == pytest.approx(0.4) and s["odd"].ci.low <= 0.4 <= s["odd"].ci.high
    with pytest.raises(UsageError, match="colour"):
        r.by("colour")


def test_save_and_load_json_keeps_every_row(tmp_path: Path) -> None:
    r = evaluate(fails_on(3), dataset(6), metrics.exact_match, progress=False)
    path = r.save(tmp_path / "report.json")
    data = json.loads(path.read_text())
    assert len(data["rows"]) == 6 and data["rows"][3]["error"]["type"] == "ValueError"
    assert data["rows"][0]["inputs"] == {"question": "q0"} and data["rows"][0]["outputs"] == {"answer": "0"}
    back = EvalResult.load(path)
    assert back.score == r.score and back.ci == r.ci and back.n == r.n
    assert back.rows[3].status == "error" and back.rows[3].error_info["message"] == "boom on 3"
    assert back.rows[1].example.inputs().toDict() == {"question": "q1"}
    assert back.rows[1].example.labels().toDict() == {"answer": "1", "category": "odd"}


def test_load_refuses_other_files(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(UsageError, match="not an lmprog evaluation report"):
        EvalResult.load(p)


def test_save_csv_has_a_row_per_example(tmp_path: Path) -> None:
    r = evaluate(fails_on(1), dataset(3), metrics.exact_match, progress=False)
    path = r.save(tmp_path / "report.csv")
    rows = list(csv.DictReader(path.open()))
    assert [x["status"] for x in rows] == ["ok", "error", "ok"]
    assert rows[0]["input.question"] == "q0" and rows[0]["output.answer"] == "0" and rows[0]["score"] == "1.0"
    assert rows[1]["error_type"] == "ValueError"
    with pytest.raises(UsageError, match=".json or .csv"):
        r.save(tmp_path / "report.txt")


def test_markdown_report_lists_score_slices_and_errors() -> None:
    r = evaluate(fails_on(1), dataset(4), metrics.exact_match, progress=False)
    md = r.to_markdown(by="category")
    assert "| 75.0% |" in md and "| odd |" in md and "ValueError: boom on 1" in md
    assert "1 error counted as 0" in md


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = evaluate(wrong_on(1), dataset(6), metrics.exact_match, progress=False)
    out = r.plot(tmp_path / "by.png", by="category")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    r = evaluate(echo, dataset(2), metrics.exact_match, progress=False)
    with pytest.raises(UsageError, match=r"pip install 'lmprog\[plot\]'"):
        r.plot(tmp_path / "x.png")


def test_demo_overlap_warns() -> None:
    program = lp.Predict("question -> answer")
    program.demos = [Demo(question="Q3", answer="3")]  # same input as row 3 after normalization
    with lp.context(lm=ScriptedLM({"q": {"answer": "x"}})), pytest.warns(UserWarning, match="demos"):
        evaluate(program, dataset(5), metrics.exact_match, progress=False)
    program.demos = [Demo(question="something else", answer="3")]
    with lp.context(lm=ScriptedLM({"q": {"answer": "x"}})), warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(program, dataset(5), metrics.exact_match, progress=False)


def test_progress_bar_only_when_forced_off_a_terminal() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    evaluate(echo, dataset(5), metrics.exact_match, progress=True, stream=quiet)
    assert quiet.getvalue() == ""  # StringIO is not a TTY
    evaluate(echo, dataset(5), metrics.exact_match, progress="always", stream=loud)
    text = loud.getvalue()
    assert "5/5" in text and "100%" in text and "score 100.0%" in text and text.endswith("\n")


def test_progress_bar_eta() -> None:
    from lmprog._progress import ProgressBar

    now = [0.0]
    bar = ProgressBar(100, enabled=False, clock=lambda: now[0])
    now[0] = 10.0
    bar.update(25)
    assert "ETA 0:30" in bar.line() and "2.5/s" in bar.line()


def test_check_overlap_finds_exact_and_near_duplicates() -> None:
    train = [lp.Example(question=q, answer="x").with_inputs("question") for q in [
        "What is the capital of France?",
        "Alice has three apples and buys five more at the market on Sunday. How many apples does she have now?",
        "Name a prime number larger than ten.",
    ]]
    test = [lp.Example(question=q, answer="y").with_inputs("question") for q in [
        "what is the capital of  FRANCE",  # exact after normalization
        "Alice has three apples and buys six more at the market on Sunday. How many apples does she have now?",
        "Who painted the Mona Lisa?",
    ]]
    report = lp_check_overlap(train, test)
    assert [(p.a_index, p.b_index, p.kind) for p in report.pairs] == [(0, 0, "exact"), (1, 1, "near")]
    assert 0.6 <= report.near[0].similarity < 1.0 and report.a_indices == [0, 1]
    assert "1 exact and 1 near-duplicate" in report.summary()
    assert not lp_check_overlap(train[2:], test[2:])
    strict = lp_check_overlap(train, test, threshold=0.95)
    assert [p.kind for p in strict.pairs] == ["exact"]


def test_check_overlap_fields_and_strings() -> None:
    a = [{"text": "hello there world", "id": 1}]
    b = [{"text": "Hello there, world!", "id": 2}]
    assert len(lp_check_overlap(a, b, fields=["text"]).exact) == 1
    assert not lp_check_overlap(a, b, fields=["text", "id"])
    assert len(lp_check_overlap(["A cat."], ["a cat"])) == 1
    with pytest.raises(UsageError, match="lacks field"):
        lp_check_overlap(a, b, fields=["missing"])


def lp_check_overlap(*args: object, **kwargs: object):
    from lmprog.overlap import check_overlap

    return check_overlap(*args, **kwargs)


def test_an_lm_judge_metric_is_counted_apart_from_the_task() -> None:
    task_lm = ScriptedLM({"q": {"answer": "x"}})
    judge = metrics.Judge(lm=ScriptedLM({"q1": {"verdict": True}}, default={"verdict": False}))
    with lp.context(lm=task_lm):
        r = evaluate(lp.Predict("question -> answer"), dataset(4), judge, threads=2, progress=False)
    assert [row.score for row in r.rows] == [0.0, 1.0, 0.0, 0.0]
    assert r.usage["by_role"]["task"]["calls"] == 4 and r.usage["by_role"]["metric"]["calls"] == 4
    assert all(len(row.usage) == 1 for row in r.rows)  # a row's usage is the program's calls only


def test_max_errors_with_threads_keeps_rows_in_flight_and_drops_the_queue() -> None:
    def program(question: str) -> lp.Prediction:
        time.sleep(0.01)
        raise ValueError("down")

    with pytest.warns(UserWarning, match="max_errors"):
        r = evaluate(program, dataset(60), metrics.exact_match, threads=2, max_errors=3, progress=False)
    assert len(r.errors) >= 3 and len(r.not_run) > 0 and len(r.errors) + len(r.not_run) == 60
    assert all(row.status == "error" for row in r.rows[: len(r.errors)])  # a prefix ran, the rest did not
