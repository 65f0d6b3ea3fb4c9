"""The usage ledger and budgets, driven through real LM calls to a loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from lmprog import usage
from lmprog._loopback import LoopbackServer, server_error
from lmprog.errors import BudgetExceeded, ProviderError
from lmprog.lm import LM
from lmprog.settings import thread_map


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(answer="four words of answer") as s:
        yield s


def ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question number {i}"}]  # 3 prompt tokens on the loopback server


def test_ledger_totals_by_model_and_role(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False)
    other = LM("openai/other-model", api_base=server.url, cache=False)
    with usage.track() as t:
        lm(messages=ask(1))
        with usage.role("teacher"):
            other(messages=ask(2))
            other(messages=ask(3))
    assert t.totals.calls == 3
    assert (t.totals.prompt_tokens, t.totals.completion_tokens) == (9, 12)
    by_model = t.by("model")
    assert by_model["openai/test-model"].calls == 1 and by_model["openai/other-model"].calls == 2
    by_role = t.by("role")
    assert by_role["task"].calls == 1 and by_role["teacher"].total_tokens == 14
    assert t.summary()["total"]["billed_calls"] == 3


def test_nested_trackers_both_see_calls_and_outer_sees_more(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False)
    with usage.track() as outer:
        lm(messages=ask(1))
        with usage.track() as inner:
            lm(messages=ask(2))
    assert (outer.totals.calls, inner.totals.calls) == (2, 1)


def test_retries_are_recorded_as_their_own_calls(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False)
    lm._sleep = lambda _s: None
    server.script(server_error(503), server_error(500))
    with usage.track() as t:
        lm(messages=ask(1))
    assert [r.kind for r in t.records] == ["call", "retry", "retry"]
    assert t.totals.failed == 2 and t.totals.billed_calls == 3


def test_budget_refuses_the_call_that_would_cross_max_calls(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False)
    with usage.budget(max_calls=2) as b:
        lm(messages=ask(1))
        lm(messages=ask(2))
        with pytest.raises(BudgetExceeded) as info:
            lm(messages=ask(3))
    assert server.count == 2  # the refused call never reached the server
    assert info.value.kind == "calls" and info.value.limit == 2
    assert b.remaining_calls == 0 and b.exhausted is info.value


def test_cache_hits_do_not_spend_the_call_budget(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url)
    lm(messages=ask(100))  # fills the cache
    with usage.budget(max_calls=1) as b:
        for _ in range(3):
            assert lm(messages=ask(100)).record.cache_hit
        lm(messages=ask(101))
        with pytest.raises(BudgetExceeded):
            lm(messages=ask(102))
    assert b.totals.cache_hits == 3 and b.totals.billed_calls == 1


def test_retries_spend_the_budget_too(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False, num_retries=5)
    lm._sleep = lambda _s: None
    server.script(*[server_error(500)] * 10)
    with usage.budget(max_calls=2), pytest.raises(BudgetExceeded):
        lm(messages=ask(1))
    assert server.count == 2


def test_token_budget_stops_once_reached(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False)
    with usage.budget(max_tokens=10):
        lm(messages=ask(1))  # 3 + 4 tokens
        lm(messages=ask(2))  # 14 tokens now: the limit is reached
        with pytest.raises(BudgetExceeded) as info:
            lm(messages=ask(3))
    assert info.value.kind == "tokens" and server.count == 2


def test_budget_and_ledger_hold_for_async_calls(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False)

    async def run() -> None:
        await lm.acall(messages=ask(1))
        await lm.acall(messages=ask(2))
        await lm.acall(messages=ask(3))

    with usage.track() as t, usage.budget(max_calls=2), pytest.raises(BudgetExceeded):
        asyncio.run(run())
    assert t.totals.calls == 2 and server.count == 2


def test_a_failed_call_is_in_the_ledger_with_its_error(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False, num_retries=0)
    server.script(server_error(500))
    with usage.track() as t, pytest.raises(ProviderError):
        lm(messages=ask(1))
    (rec,) = t.records
    assert not rec.ok and rec.error is not None and "500" in rec.error


def test_threads_started_by_lmprog_feed_the_callers_tracker(server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url, cache=False)
    with usage.track() as t, usage.role("metric"):
        thread_map(lambda i: lm(messages=ask(i)), list(range(40)), threads=8)
    assert t.totals.calls == 40 and t.by("role")["metric"].calls == 40
    assert t.totals.completion_tokens == 160
