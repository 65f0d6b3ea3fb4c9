"""The quickstart: compile a product-review sentiment classifier and show, on held-out data, what it gained.

    lmprog quickstart                 # or: from lmprog.quickstart import run_quickstart; run_quickstart("out")

The task ships with lmprog (`lmprog/data/quickstart.jsonl`: 202 short product reviews written for this
project, half positive, half negative, across eleven product categories). On the embedded Gemma 3 270M — a
base model, not instruction-tuned — the zero-shot classifier leans towards "negative" and misses many
positive reviews; a few demonstrations chosen by the optimizer fix that. The run evaluates the zero-shot
program on a held-out test split, compiles with RandomSearch (demos from the train split, chosen on the
validation split), evaluates the compiled program on the same test split and prints the paired comparison.
The three splits are disjoint, so the test score is not inflated by demos.

The program is importable, so the CLI can use it: `lmprog run lmprog.quickstart:program --load ...`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TextIO

from .dataset import Dataset
from .predict import Predict
from .signature import InputField, OutputField, Signature

DATA_FILE = "quickstart.jsonl"
INPUTS = ("review",)
# Fractions of the 202 reviews: demos come from train, candidates are chosen on val, test is held out.
SPLIT = (0.4, 0.2, 0.4)


class ReviewSentiment(Signature):
    """Classify the sentiment of a product review."""

    review: str = InputField()
    sentiment: Literal["positive", "negative"] = OutputField()


def program() -> Predict:
    """The zero-shot program the quickstart compiles: one Predict over ReviewSentiment."""
    return Predict(ReviewSentiment)


def dataset() -> Dataset:
    """The packaged reviews, with `review` as input and `sentiment` (and `category`) as labels."""
    text = resources.files("lmprog").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return Dataset(rows, inputs=INPUTS, name=DATA_FILE)


def splits(seed: int = 0) -> tuple[Dataset, Dataset, Dataset]:
    """Disjoint (train, val, test) splits of the packaged reviews, shuffled with `seed`."""
    train, val, test = dataset().split(*SPLIT, seed=seed)
    return train, val, test


@dataclass
class QuickstartResult:
    """What the quickstart measured and where it saved it."""

    zero_shot: Any  # EvalResult on the test split
    compiled_result: Any  # EvalResult of the compiled program on the same split
    comparison: Any  # Comparison (compiled vs zero-shot, paired)
    compiled: Any  # the compiled program (its .report is the CompileReport)
    paths: dict[str, Path] = field(default_factory=dict)


def run_quickstart(out_dir: str | Path = "lmprog-quickstart", lm: Any = None, *, seed: int = 0,
                   num_candidates: int = 3, max_demos: int = 4, progress: bool | str = True,
                   stream: TextIO | None = None) -> QuickstartResult:
    """Evaluate zero-shot, compile, evaluate the compiled program on held-out data, compare, save.

    lm: an `lp.LM` or a model string; None means `LMPROG_LM`, else the embedded local/gemma-3-270m.
    Writes to `out_dir`: compiled.json (load with `lp.load` or `lmprog run --load`), compile_report.json,
    zero_shot.json and compiled_eval.json (every row), comparison.json.
    """
    from . import metrics
    from .compare import compare
    from .evaluate import evaluate
    from .optimizers import RandomSearch
    from .settings import context, current_lm

    out = stream if stream is not None else sys.stdout
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    if isinstance(lm, str):
        from .lm import LM

        lm = LM(lm)
    with context(lm=lm if lm is not None else current_lm()) as active:
        model = active.lm.model if active.lm is not None else "?"
        train, val, test = splits(seed)
        metric = metrics.exact_match
        say(f"lmprog quickstart: product-review sentiment on {model}")
        say(f"data: {len(train) + len(val) + len(test)} labelled reviews -> {len(train)} train (demo pool) / "
            f"{len(val)} validation (choosing) / {len(test)} held-out test (seed {seed})")
        say()
        say(f"[1/3] zero-shot program on the {len(test)} held-out test reviews")
        zero = program()
        before = evaluate(zero, test, metric, progress=progress, seed=seed)
        say(f"      {before.summary()}")
        say()
        say(f"[2/3] compiling with RandomSearch ({num_candidates} sampled demo sets plus zero-shot, labelled and "
            "bootstrapped; scored on validation)")
        optimizer = RandomSearch(metric=metric, num_candidates=num_candidates, max_bootstrapped=max_demos,
                                 max_labeled=max_demos, seed=seed)
        compiled = optimizer.compile(zero, trainset=train, valset=val, progress=progress)
        report = compiled.report
        best = report.best_candidate
        if not progress:  # with progress on, the optimizer prints its table and choice itself
            say(report.table())
            say(f"chosen: {report.reason}")
        say()
        say(f"[3/3] compiled program ({best.n_demos if best else 0} demos) on the same {len(test)} test reviews")
        after = evaluate(compiled, test, metric, progress=progress, seed=seed)
        say(f"      {after.summary()}")
        say()
        comparison = compare(before, after, names=("zero-shot", "compiled"), seed=seed)
        say("paired comparison (same test reviews):")
        for line in comparison.summary(max_flips=3).splitlines():
            say(f"  {line}")

    paths = {
        "compiled": compiled.save(folder / "compiled.json", provenance={
            **getattr(compiled, "provenance", {}), "lm": model, "data_file": DATA_FILE, "split_seed": seed,
            "test_score": after.score, "zero_shot_test_score": before.score}),
        "report": report.save(folder / "compile_report.json"),
        "zero_shot": before.save(folder / "zero_shot.json"),
        "compiled_eval": after.save(folder / "compiled_eval.json"),
        "comparison": folder / "comparison.json",
    }
    paths["comparison"].write_text(json.dumps(comparison.to_dict(), indent=1, ensure_ascii=False, default=str),
                                   encoding="utf-8")
    say()
    say(f"saved to {folder}/: compiled.json, compile_report.json, zero_shot.json, compiled_eval.json, "
        "comparison.json")
    say(f"next:  lmprog inspect {paths['compiled']}")
    say(f"       lmprog run lmprog.quickstart:program --load {paths['compiled']} "
        "--input review=\"Arrived quickly and works like a charm.\"")
    return QuickstartResult(zero_shot=before, compiled_result=after, comparison=comparison, compiled=compiled,
                            paths=paths)
