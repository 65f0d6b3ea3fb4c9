"""Examples, Predictions and Datasets: input keys, completions, loading, seeded splits, samples and hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lmprog as lp
from lmprog.errors import UsageError
from lmprog.testing import ScriptedLM

ROWS = [{"review": f"review {i}", "label": "positive" if i % 2 else "negative"} for i in range(20)]


# -- Example ----------------------------------------------------------------------------------------------------


def test_example_with_inputs_splits_inputs_and_labels() -> None:
    ex = lp.Example(review="Great.", label="positive", source="imdb")
    marked = ex.with_inputs("review")
    assert ex.input_keys is None  # with_inputs returns a copy
    assert marked.inputs().toDict() == {"review": "Great."}
    assert marked.labels().toDict() == {"label": "positive", "source": "imdb"}
    assert marked.review == "Great." and marked["label"] == "positive"
    assert "source" in marked and len(marked) == 3


def test_example_errors_say_what_to_do() -> None:
    ex = lp.Example(q="x", a="y")
    with pytest.raises(UsageError, match="with_inputs"):
        ex.inputs()
    with pytest.raises(UsageError, match="with_inputs"):
        ex.labels()
    with pytest.raises(UsageError, match="'missing'"):
        ex.with_inputs("missing")
    with pytest.raises(AttributeError, match="'nope'"):
        ex.nope  # noqa: B018


def test_example_copy_keeps_input_keys_and_equality_considers_them() -> None:
    ex = lp.Example(q="x", a="y").with_inputs("q")
    c = ex.copy(a="z")
    assert c.input_keys == frozenset({"q"}) and c.a == "z" and ex.a == "y"
    assert ex == lp.Example(q="x", a="y").with_inputs("q")
    assert ex != lp.Example(q="x", a="y")
    assert ex.without("a").toDict() == {"q": "x"}


def test_example_from_another_example_keeps_inputs() -> None:
    ex = lp.Example(q="x", a="y").with_inputs("q")
    assert lp.Example(ex, extra=1).input_keys == frozenset({"q"})


# -- Prediction -------------------------------------------------------------------------------------------------


def test_prediction_has_typed_attributes_and_usage() -> None:
    lm = ScriptedLM([{"answer": 7, "sure": True}])
    pred = lp.Predict("question -> answer: int, sure: bool", lm=lm)(question="q")
    assert pred.answer == 7 and pred.sure is True
    assert isinstance(pred, lp.Example)
    assert len(pred.usage) == 1 and pred.usage[0].ok
    assert len(pred.completions) == 1 and pred.completions[0].answer == 7


@pytest.mark.parametrize("adapter", [lp.ChatAdapter(), lp.JSONAdapter(), lp.CompletionAdapter()],
                         ids=["chat", "json", "completion"])
def test_prediction_completions_with_n_greater_than_one(adapter: lp.Adapter) -> None:
    lm = ScriptedLM([{"answer": 1}, {"answer": 2}, {"answer": 3}, {"answer": 4}])
    p = lp.Predict("question -> answer: int", lm=lm, adapter=adapter)
    pred = p(question="q", config={"n": 3})
    assert [c.answer for c in pred.completions] == [1, 2, 3]
    assert pred.answer == 1
    assert lm.calls == 3


def test_prediction_from_completions_needs_one() -> None:
    with pytest.raises(UsageError):
        lp.Prediction.from_completions([])


# -- Dataset ----------------------------------------------------------------------------------------------------


def test_dataset_from_list_knows_its_inputs() -> None:
    data = lp.Dataset(ROWS, inputs=["review"])
    assert len(data) == 20 and data.input_keys == ("review",)
    assert all(ex.inputs().keys() == ["review"] for ex in data)
    assert data[3].label == "positive"
    assert isinstance(data[2:5], lp.Dataset) and len(data[2:5]) == 3 and data[2:5].input_keys == ("review",)
    assert lp.Dataset.from_list(ROWS, inputs=["review"]).hash() == data.hash()


def test_dataset_accepts_examples_that_already_know_their_inputs() -> None:
    data = lp.Dataset([lp.Example(r).with_inputs("review") for r in ROWS])
    assert data.input_keys == ("review",)


def test_dataset_errors_name_the_problem() -> None:
    with pytest.raises(UsageError, match="inputs="):
        lp.Dataset(ROWS)
    with pytest.raises(UsageError, match=r"example 1 has no input field\(s\) \['review'\]"):
        lp.Dataset([ROWS[0], {"text": "x", "label": "y"}], inputs=["review"])


def test_dataset_from_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS[:5]) + "\n\n", encoding="utf-8")
    data = lp.Dataset.from_jsonl(path, inputs=["review"])
    assert [e.toDict() for e in data] == ROWS[:5]
    assert data.name == "reviews.jsonl"
    assert lp.Dataset.load(path, inputs=["review"]).hash() == data.hash()


def test_dataset_from_csv_and_tsv(tmp_path: Path) -> None:
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text('review,label\n"Good, really",positive\nBad,negative\n', encoding="utf-8")
    data = lp.Dataset.from_csv(csv_path, inputs=["review"])
    assert [e.toDict() for e in data] == [{"review": "Good, really", "label": "positive"},
                                          {"review": "Bad", "label": "negative"}]
    tsv_path = tmp_path / "reviews.tsv"
    tsv_path.write_text("review\tlabel\nGood\tpositive\n", encoding="utf-8")
    assert lp.Dataset.load(tsv_path, inputs=["review"])[0].toDict() == {"review": "Good", "label": "positive"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"review": "ok", "label": "x"}\n{not json}\n', "bad.jsonl:2: not valid JSON"),
        ('{"review": "ok", "label": "x"}\n[1, 2]\n', "bad.jsonl:2: each line must be a JSON object, got list"),
        ('{"label": "x"}\n', "example 0 has no input field(s) ['review']"),
    ],
)
def test_bad_jsonl_files_give_clear_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        lp.Dataset.from_jsonl(path, inputs=["review"])
    assert expected in str(info.value)


def test_missing_files_and_unknown_formats_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        lp.Dataset.from_jsonl(tmp_path / "none.jsonl", inputs=["q"])
    with pytest.raises(UsageError, match="cannot read"):
        lp.Dataset.from_csv(tmp_path / "none.csv", inputs=["q"])
    with pytest.raises(UsageError, match="unknown data format '.xlsx'"):
        lp.Dataset.load(tmp_path / "data.xlsx", inputs=["q"])
    bad_csv = tmp_path / "cols.csv"
    bad_csv.write_text("text,label\nx,y\n", encoding="utf-8")
    with pytest.raises(UsageError, match="'review'"):
        lp.Dataset.from_csv(bad_csv, inputs=["review"])


def test_seeded_split_is_reproducible_disjoint_and_complete() -> None:
    data = lp.Dataset(ROWS, inputs=["review"])
    train, val, test = data.split(0.5, 0.25, 0.25, seed=7)
    again = data.split(0.5, 0.25, 0.25, seed=7)
    assert [[e.review for e in part] for part in (train, val, test)] == [[e.review for e in p] for p in again]
    assert (len(train), len(val), len(test)) == (10, 5, 5)
    seen = [e.review for part in (train, val, test) for e in part]
    assert sorted(seen) == sorted(r["review"] for r in ROWS) and len(set(seen)) == 20
    other = data.split(0.5, 0.25, 0.25, seed=8)
    assert [e.review for e in other[0]] != [e.review for e in train]
    assert all(part.input_keys == ("review",) for part in (train, val, test))


def test_split_of_less_than_everything_leaves_the_rest_out() -> None:
    a, b = lp.Dataset(ROWS, inputs=["review"]).split(0.25, 0.25, seed=0)
    assert len(a) == 5 and len(b) == 5
    assert not {e.review for e in a} & {e.review for e in b}


@pytest.mark.parametrize("fractions", [(), (0.6, 0.6), (0.5, 0.0), (-0.1, 0.5)])
def test_bad_split_fractions_are_refused(fractions: tuple[float, ...]) -> None:
    with pytest.raises(UsageError, match="fractions"):
        lp.Dataset(ROWS, inputs=["review"]).split(*fractions)


def test_sample_is_seeded_and_bounded() -> None:
    data = lp.Dataset(ROWS, inputs=["review"])
    s1, s2 = data.sample(5, seed=3), data.sample(5, seed=3)
    assert [e.review for e in s1] == [e.review for e in s2]
    assert len({e.review for e in s1}) == 5
    assert [e.review for e in data.sample(5, seed=4)] != [e.review for e in s1]
    with pytest.raises(UsageError, match="cannot sample 21"):
        data.sample(21)


def test_hash_changes_with_content_and_inputs_but_not_with_identity() -> None:
    base = lp.Dataset(ROWS, inputs=["review"])
    assert base.hash() == lp.Dataset([dict(r) for r in ROWS], inputs=["review"]).hash()
    changed = [dict(r) for r in ROWS]
    changed[5]["label"] = "negative" if changed[5]["label"] == "positive" else "positive"
    assert lp.Dataset(changed, inputs=["review"]).hash() != base.hash()
    assert lp.Dataset(ROWS, inputs=["review", "label"]).hash() != base.hash()
    assert lp.Dataset(ROWS[:-1], inputs=["review"]).hash() != base.hash()
    assert lp.Dataset(list(reversed(ROWS)), inputs=["review"]).hash() != base.hash()


def test_datasets_concatenate() -> None:
    data = lp.Dataset(ROWS, inputs=["review"])
    both = data[:3] + data[3:5]
    assert len(both) == 5 and [e.review for e in both] == [r["review"] for r in ROWS[:5]]
