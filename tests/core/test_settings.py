"""Settings: configure() defaults, scoped context() overrides, isolation across threads and tasks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import lmprog as lp
from lmprog.errors import UsageError
from lmprog.settings import current_lm, run_in_context, thread_map
from lmprog.testing import FunctionLM, ScriptedLM


@pytest.fixture
def restore_defaults() -> Iterator[None]:
    """configure() sets process defaults on purpose; put back the ones the session started with."""
    before = lp.settings()
    yield
    lp.configure(lm=before.lm, adapter=before.adapter, cache=before.cache, threads=before.threads,
                 trace=before.trace, allow_network=before.allow_network)


def test_context_overrides_inside_the_block_only() -> None:
    lm = ScriptedLM([])
    outer = lp.settings()
    with lp.context(lm=lm, threads=3) as s:
        assert lp.settings() is s
        assert current_lm() is lm and s.threads == 3
        inner_lm = ScriptedLM([])
        with lp.context(lm=inner_lm):
            assert current_lm() is inner_lm
            assert lp.settings().threads == 3  # inherited from the enclosing block
        assert current_lm() is lm
    assert lp.settings() is outer


def test_context_is_restored_after_an_exception() -> None:
    outer = lp.settings()
    with pytest.raises(RuntimeError), lp.context(threads=2):
        raise RuntimeError("boom")
    assert lp.settings() is outer


def test_context_takes_precedence_over_configure(restore_defaults: None) -> None:
    configured, scoped = ScriptedLM([]), ScriptedLM([])
    lp.configure(lm=configured)
    assert current_lm() is configured
    with lp.context(lm=scoped):
        assert current_lm() is scoped
        lp.configure(threads=5)  # a default changed inside a block does not undo the block's overrides
        assert current_lm() is scoped
    assert current_lm() is configured
    assert lp.settings().threads == 5


def test_configure_reaches_other_threads(restore_defaults: None) -> None:
    lm = ScriptedLM([])
    lp.configure(lm=lm)
    seen: list[Any] = []
    t = threading.Thread(target=lambda: seen.append(lp.settings().lm))
    t.start()
    t.join()
    assert seen == [lm]


@pytest.mark.parametrize("call", [lp.configure, lambda **kw: lp.context(**kw).__enter__()])
def test_unknown_setting_is_named(call: Any) -> None:
    with pytest.raises(UsageError) as info:
        call(temprature=0.5)
    assert "temprature" in str(info.value) and "allow_network" in str(info.value)


def test_two_threads_with_different_lms_in_context_each_see_their_own() -> None:
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}
    lms = {"a": ScriptedLM([{"answer": "from a"}] * 5), "b": ScriptedLM([{"answer": "from b"}] * 5)}

    def worker(name: str) -> None:
        with lp.context(lm=lms[name]):
            barrier.wait()  # both blocks are open at the same time
            answers = []
            for _ in range(5):
                answers.append(lp.Predict("question -> answer")(question="q").answer)
                barrier.wait()
            results[name] = (current_lm(), answers)

    threads = [threading.Thread(target=worker, args=(n,)) for n in lms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"] == (lms["a"], ["from a"] * 5)
    assert results["b"] == (lms["b"], ["from b"] * 5)


def test_a_thread_started_by_the_user_does_not_see_another_threads_context() -> None:
    lm = ScriptedLM([])
    seen: list[Any] = []
    root = lp.settings()
    with lp.context(lm=lm, threads=1):
        t = threading.Thread(target=lambda: seen.append(lp.settings()))
        t.start()
        t.join()
    assert seen[0] is root and seen[0].lm is not lm


def test_run_in_context_and_thread_map_carry_the_callers_context() -> None:
    lm = ScriptedLM([])
    with lp.context(lm=lm):
        fn = run_in_context(lambda: lp.settings().lm)
    assert lp.settings().lm is not lm
    box: list[Any] = []
    t = threading.Thread(target=lambda: box.append(fn()))
    t.start()
    t.join()
    assert box == [lm]
    with lp.context(lm=lm):
        assert thread_map(lambda _: lp.settings().lm, list(range(8)), threads=4) == [lm] * 8


def test_a_context_opened_in_a_worker_does_not_leak_back() -> None:
    lm = ScriptedLM([])

    def work(i: int) -> Any:
        with lp.context(threads=100 + i):
            return lp.settings().threads

    with lp.context(lm=lm, threads=2):
        assert thread_map(work, [0, 1, 2], threads=3) == [100, 101, 102]
        assert lp.settings().threads == 2 and lp.settings().lm is lm


def test_asyncio_tasks_are_isolated() -> None:
    lms = [ScriptedLM([]), ScriptedLM([])]

    async def task(i: int) -> Any:
        with lp.context(lm=lms[i]):
            await asyncio.sleep(0.01)  # the other task runs its block meanwhile
            return current_lm()

    async def main() -> list[Any]:
        return list(await asyncio.gather(task(0), task(1)))

    assert asyncio.run(main()) == lms


def test_threads_setting_is_the_default_for_batch() -> None:
    names: set[str] = set()

    def fn(messages: list[dict[str, Any]], **params: Any) -> str:
        names.add(threading.current_thread().name)
        return "[[ ## b ## ]]\nok"

    with lp.context(lm=FunctionLM(fn), threads=1):
        lp.Predict("a -> b").batch([{"a": str(i)} for i in range(4)])
    assert names == {threading.current_thread().name}


def test_cache_setting_turns_the_cache_off_for_lms_that_use_it() -> None:
    calls: list[int] = []

    def fn(messages: list[dict[str, Any]], **params: Any) -> str:
        calls.append(1)
        return "[[ ## b ## ]]\nok"

    lm = FunctionLM(fn, cache=True, model="settings-cache-test")
    p = lp.Predict("a -> b", lm=lm)
    with lp.context(cache=False):
        p(a="same")
        p(a="same")
    assert len(calls) == 2
    p(a="cached")
    with lp.track() as t:
        p(a="cached")
    assert len(calls) == 3 and t.totals.cache_hits == 1


def test_trace_records_every_predictor_call() -> None:
    lm = ScriptedLM([{"b": "1"}, {"c": "2"}])
    p1, p2 = lp.Predict("a -> b", lm=lm), lp.Predict("b -> c", lm=lm)
    with lp.context(trace=[]) as s:
        p2(b=p1(a="x").b)
    assert [(step[0], step[1]) for step in s.trace] == [(p1, {"a": "x"}), (p2, {"b": "1"})]  # type: ignore[union-attr]
    assert s.trace[1][2].c == "2"  # type: ignore[index]


def test_an_lm_may_be_given_as_a_model_string() -> None:
    with lp.context(lm="openai/some-model"):
        assert isinstance(lp.settings().lm, lp.LM) and lp.settings().lm.model == "openai/some-model"
    assert lp.Predict("a -> b", lm="openai/other").lm.model == "openai/other"
    with pytest.raises(UsageError, match="model string"):
        lp.Predict("a -> b", lm=3)


def test_inspect_history_shows_the_last_calls_of_the_lm_in_force(capsys: pytest.CaptureFixture[str]) -> None:
    lm = ScriptedLM([{"b": "first"}, {"b": "second"}])
    with lp.context(lm=lm):
        p = lp.Predict("a -> b")
        p(a="one")
        p(a="two")
        text = lp.inspect_history(1)
    assert "two" in text and "second" in text and "one" not in text
    assert text in capsys.readouterr().out
