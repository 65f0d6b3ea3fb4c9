"""Saved programs: the JSON layout, refusing mismatched programs, clear errors on bad files, no code execution."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import lmprog as lp
from lmprog.errors import UsageError
from lmprog.state import FORMAT, SCHEMA_VERSION, read_program_file


class QA(lp.Module):
    def __init__(self, answer_type: str = "str", second: str = "rewrite") -> None:
        self.retrieve = lp.Predict("question -> query")
        setattr(self, second, lp.Predict(f"question, query -> answer: {answer_type}"))

    def forward(self, question: str) -> lp.Prediction:
        raise NotImplementedError


def saved(tmp_path: Path, **provenance: Any) -> tuple[QA, Path]:
    prog = QA()
    prog.retrieve.instructions = "Write a query."
    prog.retrieve.demos = [lp.Demo(question="Who?", query="who is", kind="bootstrapped")]
    prog.rewrite.demos = [lp.Demo(question="Q", query="q", answer="A")]  # type: ignore[attr-defined]
    return prog, prog.save(tmp_path / "qa.json", provenance=provenance or None)


def test_saved_json_layout(tmp_path: Path) -> None:
    _, path = saved(tmp_path, optimizer="BootstrapFewShot", lm="openai/gpt-4o-mini", data_hash="abc123")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == FORMAT == "lmprog.program"
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    prov = doc["provenance"]
    assert prov["lmprog_version"] == lp.__version__
    assert (prov["optimizer"], prov["lm"], prov["data_hash"]) == ("BootstrapFewShot", "openai/gpt-4o-mini", "abc123")
    assert "saved_at" in prov

    preds = doc["predictors"]
    assert set(preds) == {"retrieve", "rewrite"}  # keyed by predictor name
    r = preds["retrieve"]
    assert r["instructions"] == "Write a query."
    assert r["demos"] == [{"kind": "bootstrapped", "fields": {"question": "Who?", "query": "who is"}}]
    assert preds["rewrite"]["demos"][0]["kind"] == "labelled"
    sig = r["signature"]
    assert sig["fingerprint"] == QA().retrieve.signature.fingerprint()
    assert sig["fields"] == [{"name": "question", "role": "input", "type": "str"},
                             {"name": "query", "role": "output", "type": "str"}]


def test_fields_are_matched_by_name_not_position(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    doc = json.loads(path.read_text())
    demo = doc["predictors"]["rewrite"]["demos"][0]
    demo["fields"] = dict(reversed(list(demo["fields"].items())))  # same names, other order
    path.write_text(json.dumps(doc))
    loaded = QA().load(path)
    assert loaded.rewrite.demos[0].toDict() == {"answer": "A", "query": "q", "question": "Q"}  # type: ignore[attr-defined]


def test_lp_load_without_a_program_returns_the_file_contents(tmp_path: Path) -> None:
    prog, path = saved(tmp_path, optimizer="X")
    sp = lp.load(path)
    assert sp.state == prog.dump_state() and sp.provenance["optimizer"] == "X"


def test_loading_into_a_program_with_renamed_predictors_names_them(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    with pytest.raises(UsageError) as info:
        QA(second="respond").load(path)
    msg = str(info.value)
    assert "'respond'" in msg and "'rewrite'" in msg


def test_loading_into_a_program_with_changed_fields_names_the_field(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    with pytest.raises(UsageError) as info:
        QA(answer_type="int").load(path)
    msg = str(info.value)
    assert "'rewrite'" in msg and "answer" in msg and "int" in msg

    class Renamed(lp.Module):
        def __init__(self) -> None:
            self.retrieve = lp.Predict("question -> search")
            self.rewrite = lp.Predict("question, query -> answer")

    with pytest.raises(UsageError) as info2:
        Renamed().load(path)
    assert "'retrieve'" in str(info2.value) and "search" in str(info2.value) and "query" in str(info2.value)


def test_a_refused_load_leaves_the_program_unchanged(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    target = QA(answer_type="int")
    before = target.dump_state()
    with pytest.raises(UsageError):
        target.load(path)
    assert target.dump_state() == before


def _write(tmp_path: Path, content: str | bytes) -> Path:
    p = tmp_path / "bad.json"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "provenance": {},
                           "predictors": {"self": {"instructions": "x", "demos": []}}}
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("this is not json", "invalid JSON"),
        ("", "invalid JSON"),
        ("[1, 2, 3]", "is not a saved lmprog program"),
        (json.dumps({"predictors": {}}), "is not a saved lmprog program"),
        (json.dumps(_doc(format="dspy")), "is not a saved lmprog program"),
        (json.dumps(_doc(schema_version=2)), "schema_version 2"),
        (json.dumps(_doc(schema_version=None)), "schema_version None"),
        (json.dumps(_doc(predictors=[1])), "\"predictors\" must be an object"),
        (json.dumps(_doc(predictors={"self": {"demos": {"a": 1}}})), "predictor 'self' must be an object with a list"),
        (json.dumps(_doc(predictors={"self": "nope"})), "predictor 'self' must be an object"),
        (json.dumps(_doc(predictors={"self": {"demos": ["x"]}})), "demo 0"),
        (json.dumps(_doc(predictors={"self": {"demos": [{"kind": "labelled"}]}})), "demo 0"),
    ],
    ids=["text", "empty", "list", "no-format", "other-format", "version-2", "no-version", "predictors-list",
         "demos-dict", "predictor-str", "demo-str", "demo-no-fields"],
)
def test_bad_files_give_clear_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(UsageError) as info:
        lp.Predict("q -> a").load(path)
    assert expected in str(info.value)
    assert "bad.json" in str(info.value)  # the message says which file


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read saved program"):
        lp.load(tmp_path / "nowhere.json")


def test_a_newer_schema_version_says_what_to_do(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps(_doc(schema_version=99)))
    with pytest.raises(UsageError, match="Upgrade lmprog or re-save"):
        lp.load(path)


def test_a_demo_value_of_the_wrong_type_is_a_clear_error(tmp_path: Path) -> None:
    p = lp.Predict("question -> answer: int")
    p.demos = [lp.Demo(question="q", answer=1)]
    path = p.save(tmp_path / "p.json")
    doc = json.loads(path.read_text())
    doc["predictors"]["self"]["demos"][0]["fields"]["answer"] = "not a number"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="answer"):
        lp.Predict("question -> answer: int").load(path)


def test_an_unknown_demo_kind_is_refused(tmp_path: Path) -> None:
    doc = _doc(predictors={"self": {"demos": [{"kind": "handmade", "fields": {"q": "x", "a": "y"}}]}})
    with pytest.raises(UsageError, match="handmade"):
        lp.Predict("q -> a").load(_write(tmp_path, json.dumps(doc)))


def test_loading_never_executes_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    p = lp.Predict("q -> a")
    p.demos = [lp.Demo(q=payload, a="{{ 7 * 7 }}")]
    p.instructions = payload
    path = p.save(tmp_path / "p.json")
    doc = json.loads(path.read_text())
    doc["predictors"]["self"]["demos"][0]["fields"]["extra"] = {"py/reduce": [{"py/function": "os.system"},
                                                                           {"py/tuple": [f"touch {marker}"]}]}
    path.write_text(json.dumps(doc))

    loaded = lp.Predict("q -> a").load(path)
    assert loaded.instructions == payload  # just a string
    assert loaded.demos[0].q == payload and loaded.demos[0].a == "{{ 7 * 7 }}"
    assert loaded.demos[0].extra == {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [f"touch {marker}"]}]}
    assert not marker.exists()


class _Touch:
    """Unpickling this creates a file: the proof that a loader unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_a_pickle_file_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = _write(tmp_path, pickle.dumps(_Touch(marker), protocol=0))  # protocol 0 is ASCII: it reaches json
    with pytest.raises(UsageError, match="invalid JSON"):
        read_program_file(path)
    path = _write(tmp_path, pickle.dumps(_Touch(marker)))
    with pytest.raises(Exception):  # noqa: B017 - which error is the next test's business
        read_program_file(path)
    assert not marker.exists()


def test_a_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\x80\x04\x95 binary")
    with pytest.raises(UsageError, match="bad.json"):
        read_program_file(path)


def test_save_writes_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    saved(tmp_path)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.json"]
    json.loads(path.read_text())
