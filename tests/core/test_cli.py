"""The `lmprog` command: every subcommand on a tiny program with a fake LM, and the one-line errors (exit 2,
no traceback) for every kind of bad argument."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import lmprog as lp
from lmprog.cli import main
from lmprog.quickstart import dataset, run_quickstart, splits
from lmprog.testing import FunctionLM

_names = itertools.count()

# The fake LM knows the answer only when the prompt carries a demo (a user/assistant pair before the
# question): zero-shot it always says "negative"; with any demo it reads the word "good" or "bad".
PROGRAM_SOURCE = '''
import lmprog as lp
from lmprog.testing import FunctionLM


def answer(messages, **params):
    question = messages[-1]["content"].lower()
    has_demo = any(m["role"] == "assistant" for m in messages)
    return {"label": "positive" if has_demo and "good" in question else "negative"}


lm = FunctionLM(answer)
classify = lp.Predict("text -> label: Literal['positive', 'negative']", lm=lm)


class Pipeline(lp.Module):
    def __init__(self):
        self.step = lp.Predict("text -> label: Literal['positive', 'negative']", lm=lm)

    def forward(self, text):
        return self.step(text=text)


def factory():
    return lp.Predict("text -> label: Literal['positive', 'negative']", lm=lm)


not_a_program = 42


def needs_args(x):
    return lp.Predict("text -> label", lm=lm)


def my_metric(example, prediction, trace=None):
    return example.label == prediction.label
'''


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding data files, the current directory of the CLI; sys.path is restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    rows = [{"text": f"a {'good' if i % 2 else 'bad'} thing number {i}", "label": "positive" if i % 2 else "negative"}
            for i in range(24)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:16]))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[16:]))
    return tmp_path


def write_module(folder: Path, source: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write a module with a name no other test uses (imports are cached per process); returns its name."""
    name = f"cli_prog_{next(_names)}"
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


@pytest.fixture
def prog(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return write_module(workdir, PROGRAM_SOURCE, monkeypatch)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def compile_labeled(capsys: pytest.CaptureFixture[str], prog: str, *extra: str) -> Path:
    code, out, err = run(capsys, "compile", f"{prog}:classify", "--data", "data.jsonl", "--inputs", "text",
                         "--metric", "exact_match", "--optimizer", "labeled", "--out", "compiled.json", *extra)
    assert code == 0, err
    return Path("compiled.json")


# -- happy paths ------------------------------------------------------------------------------------------
def test_compile_saves_a_program_with_demos_and_a_report(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    path = compile_labeled(capsys, prog, "--seed", "3")
    saved = json.loads(path.read_text())
    demos = saved["predictors"]["self"]["demos"]
    assert len(demos) == 4 and all(d["kind"] == "labelled" for d in demos)
    assert saved["provenance"]["optimizer"] == "LabeledFewShot"
    assert saved["provenance"]["program"] == f"{prog}:classify"
    assert saved["provenance"]["lm"] == "function"  # the program's own LM, not the default
    report = json.loads(Path("compiled.report.json").read_text())
    assert report["seed"] == 3 and report["candidates"]


def test_compile_with_valset_budget_and_optimizer_options(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    code, out, err = run(capsys, "compile", f"{prog}:factory", "--data", "data.jsonl", "--valset", "test.jsonl",
                         "--inputs", "text", "--metric", "exact_match", "--optimizer", "random_search",
                         "--opt", "num_candidates:=2", "--max-calls", "500", "--out", "rs.json",
                         "--report", "rs-report.json")
    assert code == 0, err
    report = json.loads(Path("rs-report.json").read_text())
    assert report["params"]["num_candidates"] == 2
    assert report["manifest"]["data"]["valset"]["n"] == 8
    best = report["candidates"][report["best"]]
    assert best["score"] == 1.0 and best["n_demos"] > 0  # any demo makes the fake right
    assert "saved the compiled program to rs.json" in out


def test_running_the_same_compile_again_resumes_from_its_run_dir(capsys: pytest.CaptureFixture[str],
                                                                 prog: str) -> None:
    args = ("compile", f"{prog}:factory", "--data", "data.jsonl", "--valset", "test.jsonl", "--inputs", "text",
            "--metric", "exact_match", "--optimizer", "random_search", "--opt", "num_candidates:=2",
            "--out", "rs.json")
    assert run(capsys, *args)[0] == 0
    assert Path("rs.run/search.db").exists()
    first = json.loads(Path("rs.report.json").read_text())
    assert run(capsys, *args)[0] == 0
    again = json.loads(Path("rs.report.json").read_text())
    assert all(c["resumed"] for c in again["candidates"])
    assert again["usage"]["total"]["billed_calls"] == 0
    assert again["best"] == first["best"]


def test_evaluate_scores_the_loaded_program_higher_and_saves_rows(capsys: pytest.CaptureFixture[str],
                                                                   prog: str) -> None:
    compile_labeled(capsys, prog)
    args = ("evaluate", f"{prog}:classify", "--data", "test.jsonl", "--inputs", "text", "--metric", "exact_match")
    code, out, _ = run(capsys, *args)
    assert code == 0 and out.startswith("exact_match: 50.0%")
    code, out, _ = run(capsys, *args, "--load", "compiled.json", "--threads", "2", "--report", "rows.json")
    assert code == 0 and out.startswith("exact_match: 100.0%")
    rows = json.loads(Path("rows.json").read_text())["rows"]
    assert len(rows) == 8


def test_evaluate_accepts_a_metric_from_a_module(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    code, out, err = run(capsys, "evaluate", f"{prog}:Pipeline", "--data", "test.jsonl", "--inputs", "text",
                         "--metric", f"{prog}:my_metric")
    assert code == 0, err
    assert out.startswith("my_metric: 50.0%")


def test_run_one_input_and_a_data_file(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    code, out, _ = run(capsys, "run", f"{prog}:classify", "--input", "text=a good day")
    assert code == 0 and json.loads(out) == {"label": "negative"}  # zero-shot: the fake has no demo
    compile_labeled(capsys, prog)
    code, out, _ = run(capsys, "run", f"{prog}:classify", "--load", "compiled.json", "--input", "text=a good day")
    assert code == 0 and json.loads(out) == {"label": "positive"}
    code, out, _ = run(capsys, "run", f"{prog}:classify", "--load", "compiled.json", "--data", "test.jsonl")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [x["label"] for x in lines] == ["positive" if i % 2 else "negative" for i in range(16, 24)]


def test_run_on_a_module_subclass_takes_inputs_from_forward(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    code, out, err = run(capsys, "run", f"{prog}:Pipeline", "--data", "test.jsonl")
    assert code == 0, err
    assert len(out.splitlines()) == 8


def test_inspect_shows_instructions_demos_and_provenance_without_the_program(
        capsys: pytest.CaptureFixture[str], prog: str) -> None:
    compile_labeled(capsys, prog)
    Path(f"{prog}.py").unlink()  # inspect reads JSON only
    code, out, _ = run(capsys, "inspect", "compiled.json")
    assert code == 0
    assert "optimizer: LabeledFewShot" in out
    assert "predictor 'self': StringSignature(text -> label: Literal['positive', 'negative'])" in out
    assert "instructions: Given the fields `text`, produce the fields `label`." in out
    assert "demos: 4 (4 labelled)" in out
    assert "[4] labelled" in out and "text: a " in out
    code, out, _ = run(capsys, "inspect", "compiled.json", "--json")
    assert code == 0 and len(json.loads(out)["predictors"]["self"]["demos"]) == 4


def test_help_lists_the_subcommands_and_imports_nothing_heavy() -> None:
    script = ("import sys, lmprog.cli as c; code = c.main(['--help']); "
              "print('HEAVY', [m for m in ('litellm', 'optuna', 'llama_cpp', 'numpy', 'httpx') if m in sys.modules]);"
              " sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("compile", "evaluate", "run", "inspect", "quickstart"):
        assert command in done.stdout
    assert "HEAVY []" in done.stdout


def fake_sentiment_lm() -> FunctionLM:
    """Right on every packaged review once a demo is in the prompt; zero-shot it always says "negative"."""
    labels = {ex.review: ex.sentiment for ex in dataset()}

    def answer(messages: list[dict[str, Any]], **params: Any) -> dict[str, str]:
        if not any(m["role"] == "assistant" for m in messages):
            return {"sentiment": "negative"}
        question = messages[-1]["content"]
        return {"sentiment": next(v for k, v in labels.items() if k in question)}

    return FunctionLM(answer)


def test_quickstart_subcommand_compiles_compares_and_saves(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    with lp.context(lm=fake_sentiment_lm()):
        code, out, err = run(capsys, "quickstart", "--out", "qs")
    assert code == 0, err
    assert "[1/3] zero-shot" in out and "[3/3] compiled program" in out
    assert "exact McNemar p = " in out
    for name in ("compiled.json", "compile_report.json", "zero_shot.json", "compiled_eval.json", "comparison.json"):
        assert (workdir / "qs" / name).is_file()
    comparison = json.loads((workdir / "qs" / "comparison.json").read_text())
    assert comparison["mean_b"] == 1.0 and comparison["p_value"] < 0.05


def test_quickstart_data_and_splits_are_disjoint_and_balanced() -> None:
    data = dataset()
    assert len(data) >= 150 and set(data.input_keys) == {"review"}
    assert {ex.sentiment for ex in data} == {"positive", "negative"}
    train, val, test = splits(0)
    keys = [{ex.review for ex in part} for part in (train, val, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert sum(len(k) for k in keys) == len(data)
    assert 0.35 < sum(ex.sentiment == "positive" for ex in test) / len(test) < 0.65


def test_run_quickstart_returns_the_measurements(tmp_path: Path) -> None:
    import io

    stream = io.StringIO()
    result = run_quickstart(tmp_path, lm=fake_sentiment_lm(), progress=False, stream=stream)
    assert result.zero_shot.score == pytest.approx(sum(ex.sentiment == "negative" for ex in splits(0)[2]) / 81)
    assert result.compiled_result.score == 1.0
    assert result.comparison.p_value < 0.05 and not result.comparison.negative_flips
    assert lp.load(result.paths["compiled"]).state["self"]["demos"]
    assert "candidate" in stream.getvalue()  # the candidate table is printed when progress is off


# -- bad arguments: one line on stderr, exit status 2, no traceback ----------------------------------------
def assert_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], *phrases: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("lmprog: error: ")
    for phrase in phrases:
        assert phrase in lines[0]
    return lines[0]


def evaluate_args(program: str, *, data: str = "test.jsonl", inputs: str = "text",
                  metric: str = "exact_match") -> list[str]:
    return ["evaluate", program, "--data", data, "--inputs", inputs, "--metric", metric]


def test_unknown_metric(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, evaluate_args(f"{prog}:classify", metric="accuracy"),
                       "unknown metric 'accuracy'", "exact_match", "module:function")


def test_metric_function_missing_from_its_module(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, evaluate_args(f"{prog}:classify", metric=f"{prog}:nope"), "has no attribute 'nope'")


def test_unknown_optimizer(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, ["compile", f"{prog}:classify", "--data", "data.jsonl", "--inputs", "text",
                                "--metric", "exact_match", "--optimizer", "genetic"],
                       "unknown optimizer 'genetic'", "random_search")


def test_unreadable_data(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, evaluate_args(f"{prog}:classify", data="missing.jsonl"),
                       "cannot read 'missing.jsonl'", "No such file")


def test_data_that_is_not_jsonl(capsys: pytest.CaptureFixture[str], prog: str, workdir: Path) -> None:
    (workdir / "bad.jsonl").write_text('{"text": "ok", "label": "positive"}\nnot json\n')
    assert_usage_error(capsys, evaluate_args(f"{prog}:classify", data="bad.jsonl"), "bad.jsonl:2", "not valid JSON")


def test_data_without_the_named_inputs(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, evaluate_args(f"{prog}:classify", inputs="question"), "no input field(s) ['question']")


def test_program_module_that_does_not_exist(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    assert_usage_error(capsys, evaluate_args("no_such_module_xyz:classify"),
                       "cannot import 'no_such_module_xyz'", "PYTHONPATH")


def test_program_module_that_raises_on_import(capsys: pytest.CaptureFixture[str], workdir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(workdir, "x = 1\nraise RuntimeError('config file missing')\n", monkeypatch)
    assert_usage_error(capsys, evaluate_args(f"{name}:x"), f"importing '{name}' failed", f"{name}.py:2",
                       "RuntimeError: config file missing")


def test_program_module_with_a_syntax_error(capsys: pytest.CaptureFixture[str], workdir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(workdir, "def broken(:\n    pass\n", monkeypatch)
    assert_usage_error(capsys, evaluate_args(f"{name}:broken"), "syntax error", "line 1")


def test_program_module_needing_a_missing_dependency(capsys: pytest.CaptureFixture[str], workdir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(workdir, "import not_installed_pkg_xyz\n", monkeypatch)
    assert_usage_error(capsys, evaluate_args(f"{name}:x"), "needs the module 'not_installed_pkg_xyz'")


def test_program_without_attribute(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    line = assert_usage_error(capsys, evaluate_args(f"{prog}:clasify"), f"module '{prog}' has no attribute 'clasify'")
    assert "classify" in line  # the programs it does define are suggested


def test_program_attribute_that_is_not_a_program(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, evaluate_args(f"{prog}:not_a_program"), "is a int, not an lmprog program")


def test_program_factory_that_needs_arguments(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, evaluate_args(f"{prog}:needs_args"), "calling needs_args()", "no arguments")


def test_program_spec_without_colon(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, evaluate_args(prog), "must be module:attribute")


def test_program_file_path_that_does_not_exist(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    assert_usage_error(capsys, evaluate_args("src/missing.py:classify"), "does not exist")


def test_missing_required_option(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, ["evaluate", f"{prog}:classify", "--data", "test.jsonl", "--inputs", "text"],
                       "--metric", "lmprog evaluate --help")


def test_unknown_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert_usage_error(capsys, ["train"], "invalid choice: 'train'")


def test_empty_inputs_option(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, evaluate_args(f"{prog}:classify", inputs=","), "names no field")


def test_load_file_of_another_program(capsys: pytest.CaptureFixture[str], prog: str, workdir: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    compile_labeled(capsys, prog)
    other = write_module(workdir, PROGRAM_SOURCE.replace("text -> label", "sentence -> label"), monkeypatch)
    assert_usage_error(capsys, ["run", f"{other}:classify", "--load", "compiled.json", "--input", "sentence=hi"],
                       "does not match this program", "text")


def test_inspect_a_file_that_is_not_a_saved_program(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    (workdir / "other.json").write_text('{"hello": 1}')
    assert_usage_error(capsys, ["inspect", "other.json"], "is not a saved lmprog program")
    assert_usage_error(capsys, ["inspect", "absent.json"], "cannot read saved program")


def test_run_without_inputs_or_with_malformed_ones(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, ["run", f"{prog}:classify"], "--input key=value")
    assert_usage_error(capsys, ["run", f"{prog}:classify", "--input", "text"], "must be key=value")
    assert_usage_error(capsys, ["run", f"{prog}:classify", "--input", "n:={oops"], "is not JSON")


def test_usage_error_raised_while_running_the_program(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, ["run", f"{prog}:classify", "--input", "question=hi"],
                       "unexpected argument(s) ['question']")


def test_lm_that_cannot_be_built(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    assert_usage_error(capsys, [*evaluate_args(f"{prog}:classify"), "--lm", "local:/nowhere/model.gguf"],
                       "no model file at '/nowhere/model.gguf'")
