"""Signatures: class and string forms, types and constraints, transformations, and definition-time errors."""

from __future__ import annotations

import enum
from typing import Literal, Optional

import pydantic
import pytest
from pydantic import BaseModel

import lmprog as lp
from lmprog.errors import UsageError
from lmprog.testing import ScriptedLM


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    city: str
    zip_code: str


class Person(BaseModel):
    name: str
    address: Address
    tags: list[str] = []


class Sentiment(lp.Signature):
    """Classify the sentiment of a movie review."""

    review: str = lp.InputField(desc="the review text")
    label: Literal["positive", "negative"] = lp.OutputField(desc="overall sentiment")
    score: int = lp.OutputField(ge=0, le=10)


# -- class form ---------------------------------------------------------------------------------------------


def test_docstring_is_the_instruction_and_fields_keep_roles_and_descriptions() -> None:
    assert Sentiment.instructions == "Classify the sentiment of a movie review."
    assert list(Sentiment.input_fields) == ["review"]
    assert list(Sentiment.output_fields) == ["label", "score"]
    assert Sentiment.input_fields["review"].description == "the review text"
    assert Sentiment.output_fields["label"].description == "overall sentiment"


def test_signature_without_docstring_gets_an_instruction_naming_its_fields() -> None:
    class NoDoc(lp.Signature):
        question: str = lp.InputField()
        answer: str = lp.OutputField()

    assert "`question`" in NoDoc.instructions and "`answer`" in NoDoc.instructions


def test_descriptions_reach_the_prompt() -> None:
    lm = ScriptedLM([{"label": "positive", "score": 3}])
    lp.Predict(Sentiment, lm=lm, adapter=lp.ChatAdapter())(review="fine")
    system = lm.history[-1].request["messages"][0]["content"]
    assert "Classify the sentiment of a movie review." in system
    assert "overall sentiment" in system and "the review text" in system


@pytest.mark.parametrize("bad", [-1, 11])
def test_output_constraint_ge_le_rejects_out_of_range_values(bad: int) -> None:
    lm = ScriptedLM([{"label": "positive", "score": bad}, {"label": "positive", "score": bad}])
    with pytest.raises(lp.errors.OutputParseError) as info:
        lp.Predict(Sentiment, lm=lm, adapter=lp.ChatAdapter())(review="x")
    assert info.value.field == "score"


def test_max_length_constraint_on_an_output_rejects_long_text() -> None:
    class Title(lp.Signature):
        text: str = lp.InputField()
        title: str = lp.OutputField(max_length=5)

    assert Title.type_adapter("title").validate_python("short") == "short"
    with pytest.raises(pydantic.ValidationError):
        Title.type_adapter("title").validate_python("far too long")
    lm = ScriptedLM(["[[ ## title ## ]]\nfar too long", "[[ ## title ## ]]\nstill too long"])
    with pytest.raises(lp.errors.OutputParseError) as info:
        lp.Predict(Title, lm=lm, adapter=lp.ChatAdapter())(text="x")
    assert info.value.field == "title"


# Each supported type: a value, rendered by the adapter and parsed back, comes out equal and typed.
SUPPORTED = [
    (str, "hello there"),
    (int, 42),
    (float, 2.5),
    (bool, True),
    (bool, False),
    (Literal["a", "b"], "b"),
    (Color, Color.GREEN),
    (Optional[int], None),  # noqa: UP007 - Optional is one of the spellings users write
    (Optional[int], 7),  # noqa: UP007
    (int | None, 3),
    (list[str], ["x", "y"]),
    (list[int], [1, 2, 3]),
    (dict[str, int], {"a": 1, "b": 2}),
    (dict[str, list[str]], {"k": ["v"]}),
    (Person, Person(name="Ada", address=Address(city="London", zip_code="N1"), tags=["math"])),
    (list[Person], [Person(name="B", address=Address(city="Paris", zip_code="75"))]),
]


def _type_cases() -> list[object]:
    cases = []
    for i, (tp, value) in enumerate(SUPPORTED):
        for name, adapter in (("chat", lp.ChatAdapter()), ("json", lp.JSONAdapter()),
                              ("completion", lp.CompletionAdapter())):
            cases.append(pytest.param(tp, value, adapter, id=f"{i}-{name}"))
    return cases


@pytest.mark.parametrize(("tp", "value", "adapter"), _type_cases())
def test_every_supported_type_round_trips_through_each_adapter(tp: object, value: object, adapter: lp.Adapter) -> None:
    sig = lp.make_signature({"q": (str, lp.InputField()), "out": (tp, lp.OutputField())})
    pred = lp.Predict(sig, lm=ScriptedLM([{"out": value}]), adapter=adapter)(q="go")
    assert pred.out == value
    assert type(pred.out) is type(value)
    assert len(pred.usage) == 1  # parsed on the first try, no repair


def test_class_form_accepts_every_supported_type() -> None:
    class All(lp.Signature):
        a: str = lp.InputField()
        b: int = lp.InputField()
        c: float = lp.InputField()
        d: bool = lp.InputField()
        e: Literal["x", "y"] = lp.OutputField()
        f: Color = lp.OutputField()
        g: Optional[str] = lp.OutputField()  # noqa: UP007
        h: list[int] = lp.OutputField()
        i: dict[str, float] = lp.OutputField()
        j: Person = lp.OutputField()

    assert list(All.input_fields) == ["a", "b", "c", "d"]
    assert list(All.output_fields) == ["e", "f", "g", "h", "i", "j"]
    with pytest.raises(pydantic.ValidationError):
        All.type_adapter("j").validate_python({"name": "x", "address": {"city": "c"}})  # nested field missing


# -- string form --------------------------------------------------------------------------------------------


def test_string_form_builds_the_same_class_as_the_class_form() -> None:
    class Cls(lp.Signature):
        context: list[str] = lp.InputField()
        question: str = lp.InputField()
        answer: int = lp.OutputField()
        label: Literal["yes", "no"] = lp.OutputField()
        note: str | None = lp.OutputField()

    s = lp.make_signature("context: list[str], question -> answer: int, label: Literal['yes', 'no'], note: str | None")
    assert s.fingerprint() == Cls.fingerprint()
    assert s.signature_string() == Cls.signature_string()
    for name in Cls.model_fields:
        assert s.model_fields[name].annotation == Cls.model_fields[name].annotation, name
    assert list(s.input_fields) == ["context", "question"]
    assert list(s.output_fields) == ["answer", "label", "note"]


def test_string_form_types() -> None:
    s = lp.make_signature(
        "q -> a: int | None, b: Optional[list[str]], c: dict[str, list[int]], d: bool, e: float, "
        "f: Literal[1, 2], g: Color, h: Person",
        types={"Color": Color, "Person": Person},
    )
    fields = s.model_fields
    assert fields["a"].annotation == Optional[int]  # noqa: UP007
    assert fields["b"].annotation == Optional[list[str]]  # noqa: UP007
    assert fields["c"].annotation == dict[str, list[int]]
    assert fields["d"].annotation is bool and fields["e"].annotation is float
    assert fields["f"].annotation == Literal[1, 2]
    assert fields["g"].annotation is Color and fields["h"].annotation is Person
    assert fields["q"].annotation is str  # untyped fields are str


def test_predict_accepts_the_string_form() -> None:
    p = lp.Predict("review -> label: Literal['positive', 'negative']", lm=ScriptedLM([{"label": "negative"}]))
    assert p(review="dull").label == "negative"


def test_string_form_is_never_evaluated(tmp_path: object) -> None:
    with pytest.raises(UsageError, match="cannot read type"):
        lp.make_signature("q -> a: __import__('os').system('echo hacked')")
    with pytest.raises(UsageError, match="Literal values must be quoted literals"):
        lp.make_signature("q -> a: Literal[__import__('os')]")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("question answer", "exactly one '->'"),
        ("a -> b -> c", "exactly one '->'"),
        ("q -> ", "no output fields"),
        (" -> a", "no input fields"),
        ("q -> 1bad", "'1bad'"),
        ("q -> answer: frozenset[int]", "frozenset[int]"),
        ("q -> answer: Widget", "'Widget'"),
        ("q -> answer: list", "answer"),
        ("q -> answer: Literal['x',", "answer"),
        ("q -> answer: dict[int, str]", "'answer'"),
    ],
)
def test_malformed_string_forms_fail_with_a_clear_message(spec: str, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        lp.make_signature(spec)
    assert expected in str(info.value)


def test_duplicate_names_in_the_string_form_are_named() -> None:
    with pytest.raises(UsageError, match="duplicate field name 'q'"):
        lp.make_signature("q, q -> a")
    with pytest.raises(UsageError, match="duplicate field name 'answer'"):
        lp.make_signature("answer -> answer")


# -- definition-time errors of the class form ---------------------------------------------------------------


def test_missing_annotation_names_the_field() -> None:
    with pytest.raises(UsageError, match="'verdict'.*no type annotation"):
        class Bad(lp.Signature):
            text: str = lp.InputField()
            verdict = lp.OutputField()


def test_field_not_marked_input_or_output_names_the_field() -> None:
    with pytest.raises(UsageError, match="'stray'.*not marked as input or output"):
        class Bad(lp.Signature):
            text: str = lp.InputField()
            stray: str
            answer: str = lp.OutputField()
    with pytest.raises(UsageError, match="'plain'"):
        class Bad2(lp.Signature):
            text: str = lp.InputField()
            plain: str = "default"
            answer: str = lp.OutputField()


@pytest.mark.parametrize("tp", [set[int], tuple[int, int], bytes, list, dict, dict[int, str], Literal[1.5]])
def test_unsupported_type_names_the_field(tp: object) -> None:
    with pytest.raises(UsageError) as info:
        class Bad(lp.Signature):
            text: str = lp.InputField()
            weird: tp = lp.OutputField()  # type: ignore[valid-type]
    assert "'weird'" in str(info.value)


def test_unsupported_type_in_a_postponed_string_annotation_names_the_field() -> None:
    with pytest.raises(UsageError, match="'weird'"):
        class Bad(lp.Signature):
            text: str = lp.InputField()
            weird: "set[int]" = lp.OutputField()  # noqa: UP037


def test_duplicate_field_names_in_the_dict_form_are_impossible_but_name_clash_on_append_is_named() -> None:
    with pytest.raises(UsageError, match="'label'"):
        Sentiment.append("label", lp.OutputField())


def test_signature_without_outputs_is_refused() -> None:
    with pytest.raises(UsageError, match="no output field"):
        class OnlyIn(lp.Signature):
            text: str = lp.InputField()


# -- transformations return new classes ---------------------------------------------------------------------


def test_with_instructions_returns_a_new_class_and_keeps_constraints() -> None:
    new = Sentiment.with_instructions("Rate the review.")
    assert new is not Sentiment
    assert new.instructions == "Rate the review."
    assert Sentiment.instructions == "Classify the sentiment of a movie review."
    assert new.fingerprint() == Sentiment.fingerprint()
    with pytest.raises(pydantic.ValidationError):
        new.type_adapter("score").validate_python(11)
    assert new.output_fields["label"].description == "overall sentiment"


def test_append_prepend_delete_return_new_classes_and_leave_the_original_unchanged() -> None:
    before = (list(Sentiment.model_fields), Sentiment.fingerprint())
    appended = Sentiment.append("notes", lp.OutputField(desc="extra notes"), list[str])
    prepended = Sentiment.prepend("title", lp.InputField())
    deleted = Sentiment.delete("score")

    assert list(appended.output_fields) == ["label", "score", "notes"]
    assert appended.output_fields["notes"].annotation == list[str]
    assert appended.output_fields["notes"].description == "extra notes"
    assert list(prepended.input_fields) == ["title", "review"]
    assert list(prepended.model_fields)[0] == "title"
    assert list(deleted.model_fields) == ["review", "label"]
    first_output = Sentiment.prepend("reasoning", lp.OutputField())
    assert list(first_output.output_fields) == ["reasoning", "label", "score"]

    for new in (appended, prepended, deleted, first_output):
        assert new is not Sentiment
        assert new.instructions == Sentiment.instructions
        assert new.fingerprint() != Sentiment.fingerprint()
    assert (list(Sentiment.model_fields), Sentiment.fingerprint()) == before


def test_transformation_errors_name_the_field() -> None:
    with pytest.raises(UsageError, match="'missing'"):
        Sentiment.delete("missing")
    with pytest.raises(UsageError, match="'x'"):
        Sentiment.append("x", lp.OutputField(), set[int])
    with pytest.raises(UsageError, match="'y'"):
        Sentiment.append("y", "not a field")
    with pytest.raises(UsageError, match="no output field"):
        Sentiment.delete("label").delete("score")


def test_fingerprint_changes_with_types_and_names_but_not_instructions() -> None:
    a = lp.make_signature("q -> a: int")
    assert a.fingerprint() == lp.make_signature("q -> a: int", instructions="other").fingerprint()
    assert a.fingerprint() != lp.make_signature("q -> a: float").fingerprint()
    assert a.fingerprint() != lp.make_signature("q -> b: int").fingerprint()
    assert a.fingerprint() != lp.make_signature("q, a -> x: int").fingerprint()


def test_postponed_annotations_naming_local_classes_resolve() -> None:
    # This module uses `from __future__ import annotations`, so `film: Film` arrives as the string "Film".
    class Film(BaseModel):
        title: str

    class Describe(lp.Signature):
        question: str = lp.InputField()
        film: Film = lp.OutputField()

    assert Describe.annotation("film") is Film


def test_an_annotation_that_cannot_be_resolved_is_named() -> None:
    with pytest.raises(UsageError, match="'film'.*'Nowhere' could not be resolved"):
        class Describe(lp.Signature):
            question: str = lp.InputField()
            film: Nowhere = lp.OutputField()  # type: ignore[name-defined]  # noqa: F821
