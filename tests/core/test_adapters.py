"""Adapters through Predict and ChainOfThought: prompts, parsing (tolerant of LM noise), repair, constraints."""

from __future__ import annotations

from typing import Any, Literal

import jinja2
import pytest

import lmprog as lp
from lmprog.adapters import adapter_for
from lmprog.adapters.base import _env, template
from lmprog.errors import OutputParseError, UsageError
from lmprog.lm.base import LMRequest
from lmprog.testing import FunctionLM, ScriptedLM

ADAPTERS = [lp.ChatAdapter(), lp.JSONAdapter(), lp.CompletionAdapter()]
IDS = ["chat", "json", "completion"]


class Sentiment(lp.Signature):
    """Classify the sentiment of a movie review."""

    review: str = lp.InputField()
    label: Literal["positive", "negative"] = lp.OutputField(desc="overall sentiment")
    stars: int = lp.OutputField(ge=1, le=5)


Label = lp.make_signature("review -> label: Literal['positive', 'negative']")


def request_text(lm: lp.LM, i: int = -1) -> str:
    req = lm.history[i].request
    if req["prompt"] is not None:
        return str(req["prompt"])
    return "\n".join(str(m["content"]) for m in req["messages"])


# -- Predict and ChainOfThought with every adapter --------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS, ids=IDS)
def test_predict_with_dict_answers(adapter: lp.Adapter) -> None:
    lm = ScriptedLM([{"label": "negative", "stars": 2}])
    pred = lp.Predict(Sentiment, lm=lm, adapter=adapter)(review="Dull and long.")
    assert pred.label == "negative" and pred.stars == 2
    assert "Dull and long." in request_text(lm)
    assert len(pred.usage) == 1 and pred.usage[0].kind == "call"


@pytest.mark.parametrize("adapter", ADAPTERS, ids=IDS)
def test_chain_of_thought_adds_reasoning_before_the_outputs(adapter: lp.Adapter) -> None:
    cot = lp.ChainOfThought(Sentiment, lm=ScriptedLM([{"reasoning": "It praises the plot.", "label": "positive",
                                                        "stars": 5}]), adapter=adapter)
    assert list(cot.signature.output_fields) == ["reasoning", "label", "stars"]
    assert list(Sentiment.output_fields) == ["label", "stars"]  # the user's signature is untouched
    pred = cot(review="Great plot.")
    assert pred.reasoning == "It praises the plot."
    assert (pred.label, pred.stars) == ("positive", 5)


def test_chain_of_thought_refuses_a_signature_that_already_has_reasoning() -> None:
    with pytest.raises(UsageError, match="reasoning"):
        lp.ChainOfThought("question -> reasoning, answer")


RAW = {
    "chat": "[[ ## label ## ]]\npositive\n\n[[ ## stars ## ]]\n4\n\n[[ ## completed ## ]]",
    "json": '{"label": "positive", "stars": 4}',
    "completion": " positive\nStars: 4\n",
}
RAW_COT = {
    "chat": "[[ ## reasoning ## ]]\nWarm.\n[[ ## label ## ]]\npositive\n[[ ## stars ## ]]\n4\n[[ ## completed ## ]]",
    "json": '{"reasoning": "Warm.", "label": "positive", "stars": 4}',
    "completion": " Warm.\nLabel: positive\nStars: 4\n",
}


@pytest.mark.parametrize(("adapter", "name"), list(zip(ADAPTERS, IDS, strict=True)), ids=IDS)
def test_predict_and_cot_parse_raw_text(adapter: lp.Adapter, name: str) -> None:
    pred = lp.Predict(Sentiment, lm=ScriptedLM([RAW[name]]), adapter=adapter)(review="x")
    assert (pred.label, pred.stars) == ("positive", 4)
    cot = lp.ChainOfThought(Sentiment, lm=ScriptedLM([RAW_COT[name]]), adapter=adapter)(review="x")
    assert (cot.reasoning, cot.label, cot.stars) == ("Warm.", "positive", 4)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=IDS)
def test_demos_are_rendered_into_the_request(adapter: lp.Adapter) -> None:
    lm = ScriptedLM([{"label": "positive", "stars": 5}])
    p = lp.Predict(Sentiment, lm=lm, adapter=adapter)
    p.demos = [lp.Demo(review="A quiet masterpiece.", label="positive", stars=5)]
    p(review="Loved it.")
    text = request_text(lm)
    assert "A quiet masterpiece." in text and "Loved it." in text
    assert text.index("A quiet masterpiece.") < text.index("Loved it.")


def test_instructions_of_the_predictor_are_what_the_model_sees() -> None:
    lm = ScriptedLM([{"label": "positive"}])
    lp.Predict(Label, lm=lm, instructions="Judge the review harshly.")(review="ok")
    assert "Judge the review harshly." in request_text(lm)


# -- the completion adapter's format ----------------------------------------------------------------------------


def test_completion_prompt_layout_and_stop_sequences() -> None:
    lm = ScriptedLM([" positive\nStars: 4\n"], adapter="completion")
    p = lp.Predict(Sentiment, lm=lm)  # the backend's default adapter is used
    p.demos = [lp.Demo(review="Fine film.", label="positive", stars=4)]
    p(review="Great!")
    req = lm.history[-1].request
    assert req["messages"] is None
    prompt = req["prompt"]
    assert prompt.startswith("Classify the sentiment of a movie review.")
    assert "Review: Fine film.\nLabel: positive\nStars: 4" in prompt
    assert prompt.count("\n---\n") == 2
    assert prompt.endswith("Review: Great!\nLabel:")
    assert "\n---" in req["params"]["stop"]


def test_completion_parse_stops_at_a_new_example_and_at_the_separator() -> None:
    ad = lp.CompletionAdapter()
    assert ad.parse(Sentiment, " negative\nStars: 1\n---\nReview: next\nLabel: positive") == {
        "label": "negative", "stars": 1}
    assert ad.parse(Label, " positive\nReview: another one\nLabel: negative") == {"label": "positive"}


@pytest.mark.parametrize(("value", "text"), [(True, "true"), (False, "false"), (None, "none"), (3, "3"),
                                             (2.5, "2.5"), (["a", "b"], '["a", "b"]'), ({"k": 1}, '{"k": 1}')])
def test_completion_value_text_per_type(value: Any, text: str) -> None:
    from lmprog.adapters._values import render_value

    assert render_value(value) == text


# -- tolerant parsing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ['"negative"', "'negative'", "`negative`", "```\nnegative\n```", "```text\nnegative\n```", "NEGATIVE",
     "Negative", "negative. The acting is wooden.", "**negative** because it drags", "negative, clearly"],
)
def test_chat_tolerates_label_noise(text: str) -> None:
    lm = ScriptedLM([f"[[ ## label ## ]]\n{text}\n[[ ## completed ## ]]"])
    pred = lp.Predict(Label, lm=lm, adapter=lp.ChatAdapter())(review="x")
    assert pred.label == "negative"
    assert len(pred.usage) == 1  # no repair was needed


@pytest.mark.parametrize("text", [' "Negative"\n', " negative. Dull.\n", " `NEGATIVE`\n"])
def test_completion_tolerates_label_noise(text: str) -> None:
    pred = lp.Predict(Label, lm=ScriptedLM([text]), adapter=lp.CompletionAdapter())(review="x")
    assert pred.label == "negative" and len(pred.usage) == 1


@pytest.mark.parametrize(
    "text",
    ['```json\n{"label": "negative", "stars": 2}\n```', 'Here you go: {"label": "negative", "stars": 2} Thanks!',
     '{"Label": "NEGATIVE", "Stars": "2"}', '{"label": "Negative.", "stars": 2.0}'],
)
def test_json_tolerates_fences_surrounding_text_and_case(text: str) -> None:
    pred = lp.Predict(Sentiment, lm=ScriptedLM([text]), adapter=lp.JSONAdapter())(review="x")
    assert (pred.label, pred.stars) == ("negative", 2) and len(pred.usage) == 1


def test_chat_reads_numbers_booleans_and_bullet_lists() -> None:
    sig = lp.make_signature("q -> n: int, ok: bool, things: list[str]")
    text = "[[ ## n ## ]]\n1,234\n[[ ## ok ## ]]\nYes\n[[ ## things ## ]]\n- a\n- b\n[[ ## completed ## ]]"
    pred = lp.Predict(sig, lm=ScriptedLM([text]), adapter=lp.ChatAdapter())(q="x")
    assert (pred.n, pred.ok, pred.things) == (1234, True, ["a", "b"])


def test_a_bare_answer_to_a_one_field_signature_is_accepted() -> None:
    pred = lp.Predict(Label, lm=ScriptedLM(["positive"]), adapter=lp.ChatAdapter())(review="x")
    assert pred.label == "positive"


def test_an_ambiguous_label_is_not_guessed() -> None:
    text = "[[ ## label ## ]]\nmaybe positive or negative\n[[ ## completed ## ]]"
    with pytest.raises(OutputParseError):
        lp.Predict(Label, lm=ScriptedLM([text, text]), adapter=lp.ChatAdapter())(review="x")


# -- repair -----------------------------------------------------------------------------------------------------

BAD = {"chat": "I think it is good overall.", "json": "not json at all", "completion": " neutral\nStars: 9\n"}


@pytest.mark.parametrize(("adapter", "name"), list(zip(ADAPTERS, IDS, strict=True)), ids=IDS)
def test_one_bad_answer_then_a_good_one_succeeds_with_a_counted_repair(adapter: lp.Adapter, name: str) -> None:
    lm = ScriptedLM([BAD[name], {"label": "positive", "stars": 4}])
    with lp.track() as t:
        pred = lp.Predict(Sentiment, lm=lm, adapter=adapter)(review="Lovely.")
    assert (pred.label, pred.stars) == ("positive", 4)
    assert [r.kind for r in pred.usage] == ["call", "repair"]
    assert t.totals.calls == 2 and len(lm.history) == 2
    # The repair request shows the model what was wrong with its first answer.
    repair_text = request_text(lm, -1)
    assert "could not be used" in repair_text or "rejected" in repair_text
    if name != "completion":
        assert BAD[name] in repair_text


@pytest.mark.parametrize(("adapter", "name"), list(zip(ADAPTERS, IDS, strict=True)), ids=IDS)
def test_two_bad_answers_raise_output_parse_error_with_raw_field_and_reason(adapter: lp.Adapter, name: str) -> None:
    second = {"chat": "[[ ## label ## ]]\npositive\n[[ ## stars ## ]]\n9\n[[ ## completed ## ]]",
              "json": '{"label": "positive", "stars": 9}', "completion": " positive\nStars: 9\n"}[name]
    lm = ScriptedLM([BAD[name], second, {"label": "positive", "stars": 4}])
    with lp.track() as t, pytest.raises(OutputParseError) as info:
        lp.Predict(Sentiment, lm=lm, adapter=adapter)(review="x")
    err = info.value
    assert err.raw == second
    assert err.field == "stars"
    assert "less than or equal to 5" in err.reason
    assert "stars" in str(err)
    assert isinstance(err, lp.errors.LMProgError)
    assert t.totals.calls == 2 and lm.calls == 2  # at most one repair, the third answer is never asked for
    assert [r.kind for r in t.records] == ["call", "repair"]


def test_missing_output_field_is_reported_by_name() -> None:
    text = "[[ ## label ## ]]\npositive\n[[ ## completed ## ]]"
    with pytest.raises(OutputParseError) as info:
        lp.Predict(Sentiment, lm=ScriptedLM([text, text]), adapter=lp.ChatAdapter())(review="x")
    assert info.value.field == "stars" and "stars" in info.value.reason


# -- inputs -----------------------------------------------------------------------------------------------------


def test_missing_and_unknown_inputs_are_named() -> None:
    p = lp.Predict("context, question -> answer", lm=ScriptedLM([]))
    with pytest.raises(UsageError) as info:
        p(question="q", contxt="typo")
    msg = str(info.value)
    assert "missing input(s) ['context']" in msg and "'contxt'" in msg
    assert p.lm.calls == 0  # type: ignore[attr-defined]


def test_an_input_of_the_wrong_type_is_named() -> None:
    p = lp.Predict("count: int, items: list[str] -> answer", lm=ScriptedLM([]))
    with pytest.raises(UsageError, match="'count'"):
        p(count="many", items=["a"])
    with pytest.raises(UsageError, match="'items'"):
        p(count=1, items="not a list")


# -- which adapter, constraints, templates ----------------------------------------------------------------------


def test_adapter_comes_from_context_then_the_backend_default() -> None:
    lm = ScriptedLM([], adapter="json")
    assert isinstance(adapter_for(lm), lp.JSONAdapter)
    with lp.context(adapter=lp.CompletionAdapter()):
        assert isinstance(adapter_for(lm), lp.CompletionAdapter)
        lm2 = ScriptedLM([" positive\n"])
        assert lp.Predict(Label, lm=lm2)(review="x").label == "positive"
        assert lm2.history[-1].request["prompt"] is not None
    assert isinstance(adapter_for(ScriptedLM([])), lp.ChatAdapter)


def test_json_adapter_gives_a_schema_constraint_to_backends_that_support_it() -> None:
    seen: list[LMRequest] = []

    def fn(messages: list[dict[str, Any]], request: LMRequest, **params: Any) -> str:
        seen.append(request)
        return '{"label": "positive", "stars": 3}'

    lm = FunctionLM(fn)
    lp.Predict(Sentiment, lm=lm, adapter=lp.JSONAdapter())(review="x")
    assert seen[-1].constraint is None
    lm.backend.supports_json_schema = True  # type: ignore[attr-defined]
    lp.Predict(Sentiment, lm=lm, adapter=lp.JSONAdapter())(review="x")
    schema = seen[-1].constraint.json_schema  # type: ignore[union-attr]
    assert set(schema["properties"]) == {"label", "stars"}
    assert schema["properties"]["label"]["enum"] == ["positive", "negative"]
    assert set(schema["required"]) == {"label", "stars"}


def test_completion_adapter_gives_a_grammar_to_backends_that_support_grammars() -> None:
    lm = ScriptedLM([], adapter="completion")
    assert lp.CompletionAdapter().constraint(Label, lm) is None
    lm.backend.supports_grammar = True  # type: ignore[attr-defined]
    c = lp.CompletionAdapter().constraint(Label, lm)
    assert c is not None and c.grammar and "positive" in c.grammar and "negative" in c.grammar
    assert lp.ChatAdapter().constraint(Label, lm) is None


def test_templates_are_sandboxed_with_strict_undefined() -> None:
    from jinja2.sandbox import SandboxedEnvironment

    assert isinstance(_env(), SandboxedEnvironment)
    with pytest.raises(jinja2.UndefinedError):
        template("completion.j2").render(instructions="x")  # the other variables are missing
    with pytest.raises(jinja2.exceptions.SecurityError):
        _env().from_string("{{ x.__class__.__mro__ }}").render(x=1)


def test_user_text_that_looks_like_a_template_is_data() -> None:
    for adapter in ADAPTERS:
        lm = ScriptedLM([{"label": "positive"}])
        lp.Predict(Label, lm=lm, adapter=adapter)(review="{{ 7 * 7 }} {% if true %}x{% endif %}")
        text = request_text(lm)
        assert "{{ 7 * 7 }}" in text and "49" not in text


def test_a_multiline_output_round_trips_through_the_completion_adapter() -> None:
    class Fix(lp.Signature):
        """Write a test input."""

        diff: str = lp.InputField()
        test: str = lp.OutputField(multiline=True)
        ok: bool = lp.OutputField()

    code = "var a = [1, 2];\n\na.length = 0;\nprint(a[1]);"
    pred = lp.Predict(Fix, lm=ScriptedLM([{"test": code, "ok": True}], adapter="completion"))(diff="- x\n+ y")
    assert pred.test == code and pred.ok is True
