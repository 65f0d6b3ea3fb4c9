"""LabeledFewShot: demos sampled from labelled training examples."""

from __future__ import annotations

import random
from typing import Any

from lmprog.example import Example
from lmprog.module import Module
from lmprog.predict import Demo, Predict
from lmprog.state import LABELLED

from .base import CompileRun, Metric, Optimizer, without_demos


def fits(predictor: Predict, ex: Example) -> bool:
    """An example can be a demo for a predictor when it has all its inputs and at least one output."""
    sig = predictor.signature
    return all(n in ex for n in sig.input_fields) and any(n in ex for n in sig.output_fields)


def labelled_demos(predictor: Predict, pool: list[Example], k: int, rng: random.Random) -> list[Demo]:
    """Up to k demos from `pool`, sampled without replacement, holding only the predictor's fields."""
    usable = [ex for ex in pool if fits(predictor, ex)]
    chosen = rng.sample(usable, min(k, len(usable)))
    names = predictor.signature.model_fields
    return [Demo({n: ex[n] for n in names if n in ex}, kind=LABELLED) for ex in chosen]


def with_labelled(program: Module, pool: list[Example], k: int, seed: int) -> Module:
    new = without_demos(program)
    rng = random.Random(seed)
    for _, p in new.named_predictors():
        p.demos = labelled_demos(p, pool, k, rng)
    return new


class LabeledFewShot(Optimizer):
    """Attach `k` labelled examples as demos to every predictor (no LM calls; scored on the valset if a
    metric is given)."""

    name = "labeled"
    needs_metric = False

    def __init__(self, k: int = 4, *, metric: Metric | None = None, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(metric, seed=seed, **kwargs)
        self.k = k

    def estimate_calls(self, program: Module, train: list[Example], val: list[Example]) -> int:
        return len(val) * len(program.named_predictors()) if self.metric else 0

    def search(self, program: Module, train: list[Example], val: list[Example], run: CompileRun) -> None:
        cand = with_labelled(program, train, self.k, self.seed)
        run.add(f"labelled k={self.k} seed={self.seed}", "labelled", {"k": self.k, "seed": self.seed}, cand)
