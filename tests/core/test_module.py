"""Modules: finding predictors by name, copies, state, saving, and batch runs in threads."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

import lmprog as lp
from lmprog.errors import UsageError
from lmprog.testing import FunctionLM, ScriptedLM


class Inner(lp.Module):
    def __init__(self) -> None:
        self.answer = lp.Predict("question -> answer")

    def forward(self, question: str) -> lp.Prediction:
        return self.answer(question=question)


class Program(lp.Module):
    def __init__(self) -> None:
        self.query = lp.ChainOfThought("question -> search_query")
        self.inner = Inner()
        self.hops = [lp.Predict("question -> note"), lp.Predict("question, note -> summary")]
        self.by_lang = {"en": lp.Predict("text -> label"), "fr": lp.Predict("text -> label")}
        self._private = lp.Predict("a -> b")  # private attributes are not part of the program

    def forward(self, question: str) -> lp.Prediction:
        q = self.query(question=question).search_query
        return self.inner(question=q)


def test_named_predictors_walks_nested_modules_lists_and_dicts_in_definition_order() -> None:
    names = [n for n, _ in Program().named_predictors()]
    assert names == ["query", "inner.answer", "hops.0", "hops.1", "by_lang.en", "by_lang.fr"]


def test_a_predictor_shared_by_two_attributes_is_listed_once() -> None:
    class Shared(lp.Module):
        def __init__(self) -> None:
            self.a = lp.Predict("q -> r")
            self.b = self.a

    assert [n for n, _ in Shared().named_predictors()] == ["a"]


def test_a_bare_predictor_is_its_own_program() -> None:
    p = lp.Predict("q -> r")
    assert p.named_predictors() == [("self", p)]


def test_module_call_runs_forward_and_returns_a_prediction() -> None:
    lm = ScriptedLM([{"reasoning": "r", "search_query": "capital of France"}, {"answer": "Paris"}])
    prog = Program()
    with lp.context(lm=lm):
        pred = prog(question="Where is the Louvre?")
    assert isinstance(pred, lp.Prediction) and pred.answer == "Paris"
    assert "capital of France" in lm.history[-1].request["messages"][-1]["content"]


def test_module_without_forward_says_so() -> None:
    class Empty(lp.Module):
        pass

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()()


def test_deepcopy_copies_demos_and_instructions_but_shares_the_lm() -> None:
    lm = ScriptedLM([])
    prog = Program()
    prog.inner.answer.lm = lm
    prog.inner.answer.demos = [lp.Demo(question="q1", answer="a1")]
    copy = prog.deepcopy()
    assert copy is not prog and copy.inner is not prog.inner and copy.inner.answer is not prog.inner.answer
    assert copy.inner.answer.lm is lm
    copy.inner.answer.demos.append(lp.Demo(question="q2", answer="a2"))
    copy.inner.answer.demos[0]["answer"] = "changed"
    copy.inner.answer.instructions = "New instruction."
    copy.hops[0].demos.append(lp.Demo(question="x", note="y"))
    assert len(prog.inner.answer.demos) == 1 and prog.inner.answer.demos[0].answer == "a1"
    assert prog.inner.answer.instructions != "New instruction."
    assert prog.hops[0].demos == []
    assert [n for n, _ in copy.named_predictors()] == [n for n, _ in prog.named_predictors()]


def test_deepcopy_keeps_demo_kind() -> None:
    p = lp.Predict("q -> r")
    p.demos = [lp.Demo(q="a", r="b", kind="bootstrapped")]
    assert p.deepcopy().demos[0].kind == "bootstrapped"  # type: ignore[attr-defined]


def test_reset_copy_clears_demos_and_instructions_in_the_copy_only() -> None:
    prog = Program()
    for _, p in prog.named_predictors():
        p.demos = [lp.Demo({n: "v" for n in p.signature.model_fields})]
        p.instructions = "tuned"
    fresh = prog.reset_copy()
    for (_, old), (_, new) in zip(prog.named_predictors(), fresh.named_predictors(), strict=True):
        assert new.demos == [] and new.instructions == new.signature.instructions
        assert len(old.demos) == 1 and old.instructions == "tuned"


def test_dump_state_and_load_state_restore_instructions_and_demos_by_name() -> None:
    prog = Program()
    prog.inner.answer.instructions = "Answer in one word."
    prog.inner.answer.demos = [lp.Demo(question="2+2?", answer="4", kind="bootstrapped")]
    prog.by_lang["fr"].demos = [lp.Demo(text="Bonjour", label="greeting")]
    state = prog.dump_state()
    assert set(state) == {"query", "inner.answer", "hops.0", "hops.1", "by_lang.en", "by_lang.fr"}

    other = Program().load_state(state)
    assert other.inner.answer.instructions == "Answer in one word."
    assert other.inner.answer.demos[0].toDict() == {"question": "2+2?", "answer": "4"}
    assert other.inner.answer.demos[0].kind == "bootstrapped"  # type: ignore[attr-defined]
    assert other.by_lang["fr"].demos[0].label == "greeting"
    assert other.by_lang["en"].demos == []
    assert other.dump_state() == state


def test_save_and_load_round_trip(tmp_path: Any) -> None:
    prog = Program()
    prog.query.instructions = "Write a search query."
    prog.hops[1].demos = [lp.Demo(question="q", note="n", summary="s")]
    path = prog.save(tmp_path / "sub" / "prog.json", provenance={"optimizer": "BootstrapFewShot"})
    assert path.exists()

    loaded = Program().load(path)
    assert loaded.dump_state() == prog.dump_state()
    assert loaded.provenance["optimizer"] == "BootstrapFewShot"  # type: ignore[attr-defined]

    fresh = Program()
    copy = lp.load(path, fresh)
    assert copy is not fresh and copy.dump_state() == prog.dump_state()
    assert fresh.query.instructions != "Write a search query."  # lp.load(path, program) leaves program as is


def test_typed_demo_values_survive_save_and_load(tmp_path: Any) -> None:
    p = lp.Predict("question -> answer: int, tags: list[str]")
    p.demos = [lp.Demo(question="how many?", answer=3, tags=["count"])]
    path = p.save(tmp_path / "p.json")
    q = lp.Predict("question -> answer: int, tags: list[str]").load(path)
    assert q.demos[0].answer == 3 and q.demos[0].tags == ["count"]


# -- batch --------------------------------------------------------------------------------------------------


def _echo(messages: list[dict[str, Any]], **params: Any) -> str:
    time.sleep(random.uniform(0, 0.01))  # finish out of order
    text = messages[-1]["content"]
    n = text.split("[[ ## n ## ]]")[1].split()[0]
    return f"[[ ## doubled ## ]]\n{int(n) * 2}\n[[ ## completed ## ]]"


def test_batch_keeps_input_order_with_threads() -> None:
    p = lp.Predict("n: int -> doubled: int", lm=FunctionLM(_echo))
    out = p.batch([{"n": i} for i in range(40)], threads=8)
    assert [o.doubled for o in out] == [2 * i for i in range(40)]


def test_batch_accepts_examples_and_uses_only_their_inputs() -> None:
    p = lp.Predict("n: int -> doubled: int", lm=FunctionLM(_echo))
    rows = [lp.Example(n=i, doubled=-1).with_inputs("n") for i in range(5)]
    assert [o.doubled for o in p.batch(rows, threads=3)] == [0, 2, 4, 6, 8]
    with pytest.raises(UsageError, match="dicts or Examples"):
        p.batch([3], threads=1)  # type: ignore[list-item]


def test_batch_threads_see_the_callers_context() -> None:
    lm = FunctionLM(_echo)
    seen_threads: set[str] = set()

    def wrapped(messages: list[dict[str, Any]], **params: Any) -> str:
        seen_threads.add(threading.current_thread().name)
        return _echo(messages, **params)

    ctx_lm = FunctionLM(wrapped)
    p = lp.Predict("n: int -> doubled: int")  # no LM of its own: it must find the one in context
    with lp.context(lm=ctx_lm, adapter=lp.ChatAdapter(), trace=[]) as s:
        out = p.batch([{"n": i} for i in range(12)], threads=4)
        assert len(s.trace) == 12  # type: ignore[arg-type] - every thread appended to the caller's trace
    assert [o.doubled for o in out] == [2 * i for i in range(12)]
    assert len(ctx_lm.history) == 12 and len(lm.history) == 0
    assert any(name != threading.current_thread().name for name in seen_threads)


def test_batch_return_exceptions_keeps_failures_in_place() -> None:
    lm = ScriptedLM({"[[ ## n ## ]]\n1\n": "garbage"}, default={"doubled": 0})
    p = lp.Predict("n: int -> doubled: int", lm=lm, adapter=lp.ChatAdapter())
    out = p.batch([{"n": 0}, {"n": 1}, {"n": 2}], threads=2, return_exceptions=True)
    assert out[0].doubled == 0 and out[2].doubled == 0
    assert isinstance(out[1], lp.errors.OutputParseError)
    with pytest.raises(lp.errors.OutputParseError):
        p.batch([{"n": 0}, {"n": 1}], threads=2)
