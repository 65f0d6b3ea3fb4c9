"""The fakes shipped in lmprog.testing, and the switch that blocks network LM calls."""

from __future__ import annotations

from typing import Any

import pytest

import lmprog as lp
from lmprog.errors import UsageError
from lmprog.lm.base import BackendResult, LMRequest
from lmprog.testing import FunctionLM, ScriptedLM, block_network


def test_scripted_lm_answers_in_order_and_says_when_it_runs_out() -> None:
    lm = ScriptedLM(["one", "two"])
    assert lm(messages=[{"role": "user", "content": "a"}]).text == "one"
    assert lm(prompt="b").text == "two"
    with pytest.raises(UsageError, match="ran out of answers after 2 call"):
        lm(prompt="c")


def test_scripted_lm_cycle_and_default() -> None:
    lm = ScriptedLM(["x", "y"], cycle=True)
    assert [lm(prompt="p").text for _ in range(5)] == ["x", "y", "x", "y", "x"]
    lm2 = ScriptedLM(["first"], default="fallback")
    assert [lm2(prompt="p").text for _ in range(3)] == ["first", "fallback", "fallback"]


def test_scripted_lm_answers_by_substring_of_the_current_inputs() -> None:
    lm = ScriptedLM({"delight": {"label": "positive"}, "bore": {"label": "negative"}})
    p = lp.Predict("review -> label: Literal['positive', 'negative']", lm=lm)
    assert p(review="What a bore.").label == "negative"
    assert p(review="A delight.").label == "positive"
    # A demo mentioning the other key does not shadow the current input.
    p.demos = [lp.Demo(review="a delight of a film", label="positive")]
    assert p(review="It is a bore.").label == "negative"
    p.demos = []
    with pytest.raises(UsageError, match="no answer for this request"):
        p(review="unrelated")


def test_scripted_lm_substring_default() -> None:
    lm = ScriptedLM({"zzz": "never"}, default="otherwise")
    assert lm(prompt="hello").text == "otherwise"


def test_dict_answers_need_a_predictor_call() -> None:
    with pytest.raises(UsageError, match="dict answer needs a call made by a predictor"):
        ScriptedLM([{"a": 1}])(prompt="raw call")


def test_scripted_lm_with_n_samples_gives_completions() -> None:
    lm = ScriptedLM([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    pred = lp.Predict("question -> answer", lm=lm, n=3)(question="q")
    assert pred.answer == "a"
    assert [c.answer for c in pred.completions] == ["a", "b", "c"]
    assert len(pred.usage) == 1  # one call that returned three samples


def test_function_lm_receives_messages_and_params() -> None:
    seen: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []

    def fn(messages: list[dict[str, Any]], **params: Any) -> str:
        seen.append((messages, {k: v for k, v in params.items() if k != "request"}))
        return "[[ ## answer ## ]]\n42"

    lm = FunctionLM(fn, temperature=0.0)
    pred = lp.Predict("question -> answer: int", lm=lm, max_tokens=50)(question="What is six times seven?")
    assert pred.answer == 42
    messages, params = seen[-1]
    assert messages[0]["role"] == "system" and "What is six times seven?" in messages[-1]["content"]
    assert params["temperature"] == 0.0 and params["max_tokens"] == 50


def test_function_lm_gets_a_prompt_as_one_user_message_and_the_request_when_asked() -> None:
    got: list[Any] = []

    def fn(messages: list[dict[str, Any]], request: LMRequest, **params: Any) -> dict[str, Any]:
        got.append((messages, request, params))
        return {"label": "negative"}

    pred = lp.Predict("review -> label: Literal['positive', 'negative']", lm=FunctionLM(fn),
                      adapter=lp.CompletionAdapter())(review="meh")
    assert pred.label == "negative"
    messages, request, params = got[0]
    assert messages == [{"role": "user", "content": request.prompt}]
    assert "\n---" in params["stop"]  # the completion adapter's stop sequences arrive as params
    assert request.prompt.endswith("Label:")


def test_function_lm_without_a_request_parameter_is_not_given_one() -> None:
    lm = FunctionLM(lambda messages: "plain")
    assert lm(prompt="x").text == "plain"


def test_fakes_satisfy_the_lm_interface_usage_and_history() -> None:
    lm = ScriptedLM([{"answer": "x"}], model="scripted-model")
    with lp.track() as t:
        pred = lp.Predict("question -> answer", lm=lm)(question="q")
    assert isinstance(lm, lp.LM)
    assert t.totals.calls == 1 and t.totals.prompt_tokens > 0 and t.totals.completion_tokens > 0
    assert pred.usage[0].model == "scripted-model"
    assert len(lm.history) == 1 and lm.history[0].texts == ["[[ ## answer ## ]]\nx\n\n[[ ## completed ## ]]"]
    shown = lm.inspect_history(1, file=open("/dev/null", "w"))  # noqa: SIM115
    assert "[[ ## answer ## ]]" in shown and "scripted-model" in shown


def test_budget_applies_to_fakes() -> None:
    lm = ScriptedLM(["a", "b", "c"])
    with lp.budget(max_calls=2), pytest.raises(lp.errors.BudgetExceeded):
        for _ in range(3):
            lm(prompt="p")
    assert lm.calls == 2


# -- the network switch ---------------------------------------------------------------------------------------


class NetworkBackend:
    """Pretends to be a provider; records whether it was reached."""

    default_adapter = "chat"
    supports_grammar = False
    supports_json_schema = False
    is_network = True

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: LMRequest, timeout: float | None) -> BackendResult:
        self.calls += 1
        return BackendResult(texts=["[[ ## answer ## ]]\nfrom the network"])


def test_the_test_suite_runs_with_network_calls_blocked() -> None:
    assert lp.settings().allow_network is False


def test_a_network_lm_call_raises_when_network_is_off() -> None:
    backend = NetworkBackend()
    lm = lp.LM("openai/some-model", backend=backend, cache=False)
    with lp.context(allow_network=False):
        with pytest.raises(UsageError, match="network LM call to 'openai/some-model' was blocked"):
            lm(prompt="hi")
        with pytest.raises(UsageError, match="ScriptedLM or FunctionLM"):
            lp.Predict("question -> answer", lm=lm)(question="q")
    assert backend.calls == 0
    with lp.context(allow_network=True):
        assert lp.Predict("question -> answer", lm=lm)(question="q").answer == "from the network"
    assert backend.calls == 1


def test_local_backends_are_not_blocked() -> None:
    backend = NetworkBackend()
    backend.is_network = False
    with lp.context(allow_network=False):
        assert lp.LM("local-thing", backend=backend, cache=False)(prompt="x").text.endswith("from the network")


def test_block_network_switch() -> None:
    before = lp.settings().allow_network
    backend = NetworkBackend()
    lm = lp.LM("openai/x", backend=backend, cache=False)
    try:
        block_network(False)
        assert lm(prompt="x").texts
        block_network()
        with pytest.raises(UsageError):
            lm(prompt="y")
    finally:
        lp.configure(allow_network=before)
    assert backend.calls == 1
