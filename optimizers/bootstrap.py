"""BootstrapFewShot: run a teacher on training examples while tracing; runs that pass the metric become
demos for every predictor they went through."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from lmprog import usage
from lmprog._progress import ProgressBar, should_show
from lmprog.errors import BudgetExceeded, UsageError
from lmprog.example import Example
from lmprog.module import Module
from lmprog.predict import Demo
from lmprog.settings import context
from lmprog.state import BOOTSTRAPPED

from .base import CompileRun, Metric, Optimizer, input_key, truthy_score, without_demos
from .labeled import fits, labelled_demos, with_labelled


@dataclass
class BootstrapOutcome:
    """Demos per predictor name, and what happened on the way."""

    demos: dict[str, list[Demo]] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)  # input keys of the examples that produced demos
    attempts: int = 0
    successes: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "successes": self.successes, "failed_runs": len(self.failures),
                "failures": self.failures[:20]}


def bootstrap(program: Module, train: list[Example], metric: Metric, *, teacher: Module | None,
              max_bootstrapped: int, max_labeled: int, max_rounds: int, threshold: float | None, seed: int | None,
              progress: bool | str = False) -> BootstrapOutcome:
    """Collect up to `max_bootstrapped` successful traced runs of the teacher over `train`.

    `seed=None` keeps the trainset order; otherwise it is shuffled with that seed. The teacher defaults to
    the program with labelled demos; an example is never shown to the teacher as a demo while it is the
    example being run. Round r > 0 uses rollout id r and temperature 0.7 to draw fresh answers past the cache.
    """
    order = list(train)
    if seed is not None:
        random.Random(seed).shuffle(order)
    base_teacher = teacher.deepcopy() if teacher is not None else (
        with_labelled(program, train, max_labeled, seed or 0) if max_labeled > 0 else without_demos(program))
    t_named = base_teacher.named_predictors()
    student_names = {n for n, _ in program.named_predictors()}
    missing = [n for n, _ in t_named if n not in student_names]
    if missing:
        raise UsageError(f"teacher predictors {missing} have no counterpart in the student program; the teacher "
                         "must have the same structure (predictor names) as the program")
    name_of = {id(p): n for n, p in t_named}
    teacher_demos = {n: list(p.demos) for n, p in t_named}
    out = BootstrapOutcome(demos={n: [] for n in student_names})
    done: set[str] = set()
    # The bar counts demos found towards max_bootstrapped; runs that did not pass are shown beside it.
    bar = ProgressBar(max_bootstrapped, label="bootstrap demos", enabled=should_show(progress, _stderr()),
                      stream=_stderr())
    for rnd in range(max_rounds):
        for _, p in t_named:
            if rnd > 0:
                p.config = {**p.config, "rollout_id": rnd, "temperature": 0.7}
        for ex in order:
            if out.successes >= max_bootstrapped:
                break
            key = input_key(ex)
            if key in done:
                continue
            for p_name, p in t_named:  # never its own demo
                p.demos = [d for d in teacher_demos[p_name] if input_key(_as_example(d, ex)) != key]
            out.attempts += 1
            trace: list[Any] = []
            try:
                with context(trace=trace), usage.role("teacher"):
                    pred = base_teacher(**ex.inputs())
                with usage.role("metric"):
                    ok = truthy_score(metric(ex, pred, trace), threshold)
            except BudgetExceeded:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed run is recorded, not fatal
                out.failures.append({"example": key[:200], "round": rnd, "error": f"{type(exc).__name__}: {exc}"})
                bar.update(out.successes, runs=out.attempts)
                continue
            if not ok:
                out.failures.append({"example": key[:200], "round": rnd, "error": "metric did not pass"})
            else:
                done.add(key)
                out.sources.add(key)
                out.successes += 1
                for pred_obj, inputs, prediction in trace:
                    name = name_of.get(id(pred_obj))
                    if name is None:
                        continue
                    outputs = {k: prediction[k] for k in pred_obj.signature.output_fields if k in prediction}
                    out.demos[name].append(Demo({**inputs, **outputs}, kind=BOOTSTRAPPED))
            bar.update(out.successes, runs=out.attempts)
        if out.successes >= max_bootstrapped:
            break
    short = out.successes < max_bootstrapped
    bar.close(note=f"only {out.successes} of {out.attempts} runs passed the metric" if short else "")
    return out


def _as_example(d: Demo, like: Example) -> Example:
    keys = [k for k in (like.input_keys or ()) if k in d]
    return Example(d).with_inputs(*keys)


def _stderr() -> Any:
    import sys

    return sys.stderr


def assemble(program: Module, outcome: BootstrapOutcome, train: list[Example], max_bootstrapped: int,
             max_labeled: int, seed: int) -> Module:
    """The student: bootstrapped demos first, then labelled ones (from examples that produced none) up to
    `max_labeled` demos in all for each predictor."""
    student = without_demos(program)
    rng = random.Random(f"labelled-fill-{seed}")  # independent of the shuffle that chose the teacher's inputs
    pool = [ex for ex in train if input_key(ex) not in outcome.sources]
    for name, p in student.named_predictors():
        boot = outcome.demos.get(name, [])[:max_bootstrapped]
        room = max(0, max_labeled - len(boot))
        p.demos = boot + (labelled_demos(p, [ex for ex in pool if fits(p, ex)], room, rng) if room else [])
    return student


class BootstrapFewShot(Optimizer):
    """Demos from the teacher's own successful runs, per predictor, plus labelled demos to fill up."""

    name = "bootstrap"

    def __init__(self, metric: Metric | None = None, *, max_bootstrapped: int = 4, max_labeled: int = 4,
                 max_rounds: int = 1, teacher: Module | None = None, metric_threshold: float | None = None,
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(metric, seed=seed, **kwargs)
        self.max_bootstrapped = max_bootstrapped
        self.max_labeled = max_labeled
        self.max_rounds = max_rounds
        self.teacher = teacher
        self.metric_threshold = metric_threshold

    def estimate_calls(self, program: Module, train: list[Example], val: list[Example]) -> int:
        per_run = max(1, len(program.named_predictors()))
        return (min(len(train), 2 * self.max_bootstrapped) + len(val)) * per_run

    def search(self, program: Module, train: list[Example], val: list[Example], run: CompileRun) -> None:
        assert self.metric is not None
        outcome = bootstrap(program, train, self.metric, teacher=self.teacher,
                            max_bootstrapped=self.max_bootstrapped, max_labeled=self.max_labeled,
                            max_rounds=self.max_rounds, threshold=self.metric_threshold, seed=self.seed,
                            progress=run.progress)
        run.report.bootstrap = outcome.summary()
        student = assemble(program, outcome, train, self.max_bootstrapped, self.max_labeled, self.seed)
        run.add(f"bootstrapped seed={self.seed}", "bootstrapped",
                {"seed": self.seed, "max_bootstrapped": self.max_bootstrapped, "max_labeled": self.max_labeled},
                student)
