"""The optimizer contract: `compile(program, trainset, valset=None) -> new program` with `.report`.

The driver here is shared by every optimizer: it refuses a valset that overlaps the trainset, holds out part
of the trainset when no valset is given (and says so), runs the search under one budget that spans every LM
call (task, teacher, metric), scores candidates on the valset only, keeps the best candidate found so far
when the budget ends the search, and fills the report (usage per role, wall time, seed, manifest).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from lmprog import usage
from lmprog.dataset import Dataset
from lmprog.errors import BudgetExceeded, UsageError
from lmprog.example import Example
from lmprog.module import Module

from .report import Candidate, CompileReport, manifest

Metric = Callable[..., Any]


def input_key(ex: Example) -> str:
    """Identity of an example by its input values (used for overlap checks and 'never its own demo')."""
    keys = ex.input_keys if ex.input_keys is not None else frozenset(ex.keys())
    return json.dumps({k: ex[k] for k in sorted(keys) if k in ex}, sort_keys=True, default=str)


def check_examples(name: str, data: Sequence[Example]) -> list[Example]:
    rows = list(data)
    for i, ex in enumerate(rows):
        if not isinstance(ex, Example) or ex.input_keys is None:
            raise UsageError(f"{name}[{i}] is not an Example that knows its inputs; load data with "
                             "lp.Dataset(..., inputs=[...]) or call .with_inputs(...)")
    return rows


def refuse_overlap(train: list[Example], val: list[Example]) -> None:
    seen = {input_key(ex): i for i, ex in enumerate(train)}
    clashes = [(seen[k], j) for j, ex in enumerate(val) if (k := input_key(ex)) in seen]
    if clashes:
        shown = ", ".join(f"trainset[{i}] = valset[{j}]" for i, j in clashes[:5])
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise UsageError(
            f"valset overlaps trainset in {len(clashes)} example(s) ({shown}{more}): scores on it would "
            "reward memorised demos. Remove them from one of the sets (lp.check_overlap finds near-duplicates)."
        )


def split_heldout(train: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    import random

    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(train) * fraction))
    if len(train) - n_val < 1:
        raise UsageError(f"trainset of {len(train)} example(s) is too small to hold out a validation part; "
                         "pass a valset")
    val = [train[i] for i in order[:n_val]]
    rest = [train[i] for i in order[n_val:]]
    return rest, val


def without_demos(program: Module) -> Module:
    """A copy of the program with no demos; its instructions (the user's own or tuned ones) are kept."""
    new = program.deepcopy()
    for p in new.predictors():
        p.demos = []
    return new


def truthy_score(value: Any, threshold: float | None) -> bool:
    if threshold is None:
        return bool(value)
    return float(value) >= threshold


class Optimizer:
    """Base class; subclasses implement `search(program, train, val, run)`."""

    name = "optimizer"
    needs_metric = True

    def __init__(self, metric: Metric | None = None, *, seed: int = 0, threads: int | None = None,
                 holdout: float = 0.25) -> None:
        if self.needs_metric and metric is None:
            raise UsageError(f"{type(self).__name__} needs a metric, e.g. metric=lp.metrics.exact_match")
        if metric is not None and not callable(metric):
            raise UsageError("metric must be a callable (example, prediction, trace=None) -> float | bool, "
                             f"got {metric!r}")
        self.metric = metric
        self.seed = seed
        self.threads = threads
        self.holdout = holdout

    def params(self) -> dict[str, Any]:
        return {k: (getattr(v, "__name__", repr(v)) if callable(v) else v) for k, v in vars(self).items()
                if not k.startswith("_")}

    def estimate_calls(self, program: Module, train: list[Example], val: list[Example]) -> int:
        return len(val) * max(1, len(program.named_predictors()))

    def search(self, program: Module, train: list[Example], val: list[Example], run: CompileRun) -> None:
        raise NotImplementedError

    def compile(self, program: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None, *,
                budget: dict[str, Any] | None = None, progress: bool | str = True,
                run_dir: str | Path | None = None) -> Module:
        """Return a compiled copy of `program` (the original is untouched) with `.report`."""
        if not isinstance(program, Module):
            raise UsageError(f"compile() takes an lp.Module (e.g. lp.Predict(...)), got {type(program).__name__}")
        if not program.named_predictors():
            raise UsageError(f"{type(program).__name__} has no predictors to optimize")
        train = check_examples("trainset", trainset)
        if not train:
            raise UsageError("trainset is empty")
        heldout = None
        if valset is None and self.metric is None:
            val: list[Example] = []  # nothing will be scored, so nothing needs holding out
        elif valset is None:
            train, val = split_heldout(train, self.holdout, self.seed)
            heldout = (f"no valset given: held out {len(val)} of {len(train) + len(val)} training examples "
                       f"(seed {self.seed}) for validation; demos come only from the other {len(train)}")
        else:
            val = check_examples("valset", valset)
            refuse_overlap(train, val)
        report = CompileReport(optimizer=type(self).__name__, params=self.params(), seed=self.seed,
                               heldout=heldout)
        report.estimated_calls = self.estimate_calls(program, train, val)
        report.manifest = manifest(program, {"trainset": train, "valset": val})
        run = CompileRun(self, program, val, report, progress, Path(run_dir) if run_dir else None)
        if progress:
            _say(f"{report.optimizer}: {len(train)} train / {len(val)} val examples; "
                 f"estimated ~{report.estimated_calls} LM calls"
                 + (f"; budget {budget}" if budget else ""))
        started = time.perf_counter()
        with usage.track() as tracker, usage.budget(**(budget or {})):
            try:
                self.search(program, train, val, run)
            except BudgetExceeded as exc:
                report.stopped_by = f"budget: {exc}"
            except KeyboardInterrupt:
                report.stopped_by = "interrupted (Ctrl-C)"
        report.usage = tracker.summary()
        report.wall_time = time.perf_counter() - started
        # The program's own models, plus every model the compile called (a teacher's, a judge metric's).
        report.manifest["program_models"] = list(report.manifest.get("models", []))
        report.manifest["models"] = sorted(set(report.usage.get("by_model", {})) | set(report.manifest["models"]))
        compiled = run.finish()
        if progress:
            _say(str(report))
        return compiled


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Scored(NamedTuple):
    """A candidate's validation result. `lm_errors` counts rows that failed because an LM call failed (an
    outage, not the program's behaviour), which a search should not store as a finished result."""

    score: float | None
    ci: tuple[float, float] | None
    n: int
    errors: int
    complete: bool
    lm_errors: int = 0


class CompileRun:
    """The state of one compile: scores candidates and picks the winner."""

    def __init__(self, optimizer: Optimizer, program: Module, val: list[Example], report: CompileReport,
                 progress: bool | str, run_dir: Path | None) -> None:
        self.optimizer = optimizer
        self.program = program
        self.val = val
        self.report = report
        self.progress = progress
        self.run_dir = run_dir

    def score(self, candidate_program: Module, label: str = "candidate") -> Scored:
        """Evaluate on the valset. A spent budget or Ctrl-C stops the search."""
        from lmprog.errors import LMError
        from lmprog.evaluate import evaluate

        if self.optimizer.metric is None:
            return Scored(None, None, 0, 0, True)
        with usage.role("task"):
            res = evaluate(candidate_program, Dataset(self.val), self.optimizer.metric, threads=self.optimizer.threads,
                           progress=self.progress, seed=self.optimizer.seed, label=f"validate {label}")
        complete = res.complete
        ci = (float(res.ci[0]), float(res.ci[1]))
        lm_errors = sum(isinstance(r.error, LMError) for r in res.errors)
        out = Scored(float(res.score), ci, res.n, len(res.errors), complete, lm_errors)
        if res.interrupted:
            self.report.stopped_by = "interrupted (Ctrl-C)"
        elif res.stopped and str(res.stopped).startswith("budget"):
            self.report.stopped_by = str(res.stopped)
        return out

    def add(self, name: str, kind: str, params: dict[str, Any], candidate_program: Module,
            scored: Scored | None = None) -> Candidate:
        score, ci, n, errors, complete, _ = scored if scored is not None else self.score(candidate_program, name)
        c = Candidate(name=name, kind=kind, params=params, score=score, ci=ci, n=n, errors=errors,
                      n_demos=sum(len(p.demos) for p in candidate_program.predictors()), complete=complete,
                      state=candidate_program.dump_state())
        self.report.candidates.append(c)
        if self.report.stopped_by and not complete:
            if self.report.stopped_by.startswith("interrupted"):
                raise KeyboardInterrupt
            raise BudgetExceeded(self.report.stopped_by, kind="calls", limit=0, spent=0)
        return c

    def choose(self) -> int | None:
        """Best complete candidate; ties go to fewer demos (cheaper prompts), then to the earlier one."""
        scored = [(i, c) for i, c in enumerate(self.report.candidates) if c.complete]
        if not scored:
            return None
        if all(c.score is None for _, c in scored):
            return scored[-1][0]

        def key(item: tuple[int, Candidate]) -> tuple[float, int, int]:
            i, c = item
            s = c.score if c.score is not None and not math.isnan(c.score) else -math.inf
            return (-s, c.n_demos, i)

        return min(scored, key=key)[0]

    def finish(self) -> Module:
        compiled = self.program.deepcopy()
        report = self.report
        best = self.choose()
        report.best = best
        if best is None:
            report.reason = "no candidate finished; the program is returned unchanged"
        else:
            c = report.candidates[best]
            compiled.load_state(c.state)
            ties = [x for x in report.candidates if x.complete and x.score == c.score]
            report.reason = (f"{c.name}: highest validation score" + (f" {c.score:.3f}" if c.score is not None else "")
                             + (f" (tied with {len(ties) - 1} other(s); fewest demos wins)" if len(ties) > 1 else ""))
        compiled.report = report  # type: ignore[attr-defined]
        compiled.provenance = {  # type: ignore[attr-defined]
            "optimizer": report.optimizer, "optimizer_params": report.params, "seed": report.seed,
            "lm": ", ".join(report.manifest.get("program_models", [])), "data": report.manifest.get("data", {}),
            "best_candidate": None if best is None else report.candidates[best].name,
            "validation_score": None if best is None else report.candidates[best].score,
        }
        return compiled
