"""`evaluate(program, dataset, metric)`: run a program over examples in threads and score every row.

Nothing is lost on the way: an example whose program (or metric) raised becomes an error row holding the
exception; Ctrl-C returns the rows finished so far (`interrupted=True`); a crossed budget or `max_errors`
stops the run early and says so. Rows keep dataset order whatever order the threads finish in.
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from . import stats, usage
from ._progress import ProgressBar, should_show
from .errors import BudgetExceeded, UsageError, describe
from .eval_result import ERROR_POLICIES, EvalResult, Row
from .example import Example
from .settings import run_in_context, settings

__all__ = ["EvalResult", "Row", "evaluate"]


class _Stop(Exception):
    """Raised inside a row when the whole run must stop (the budget is spent)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", None) or type(obj).__name__


def _error_info(exc: BaseException, stage: str) -> dict[str, Any]:
    info = describe(exc)
    info["stage"] = stage
    info["traceback"] = "".join(traceback.format_exception(exc)[-6:])
    return info


def _score_value(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise UsageError(f"the metric returned {value!r}; a metric must return a bool or a number")


def _run_row(program: Callable[..., Any], metric: Callable[..., Any], index: int, example: Example) -> Row:
    start = time.perf_counter()
    try:
        prediction = program(**example.inputs())
    except BudgetExceeded as exc:
        raise _Stop(f"budget: {exc}") from exc
    except Exception as exc:
        return Row(index, example, "error", error=exc, error_info=_error_info(exc, "program"),
                   latency=time.perf_counter() - start)
    latency = time.perf_counter() - start
    calls = list(getattr(prediction, "usage", None) or [])
    try:
        with usage.role("metric"):
            score = _score_value(metric(example, prediction))
    except BudgetExceeded as exc:
        raise _Stop(f"budget: {exc}") from exc
    except Exception as exc:
        return Row(index, example, "error", prediction=prediction, error=exc,
                   error_info=_error_info(exc, "metric"), latency=latency, usage=calls)
    return Row(index, example, "ok", prediction=prediction, score=score, latency=latency, usage=calls)


def _input_key(example: Example, keys: Iterable[str]) -> tuple[tuple[str, str], ...] | None:
    from .overlap import normalize

    items = []
    for k in sorted(keys):
        if k not in example:
            return None
        items.append((k, normalize(example[k])))
    return tuple(items)


def warn_demo_overlap(program: Any, examples: list[Example]) -> int:
    """Warn when evaluated inputs also appear among the program's demos; returns how many do."""
    named = getattr(program, "named_predictors", None)
    if not callable(named):
        return 0
    key_sets = {tuple(sorted(ex.input_keys or ())) for ex in examples}
    demo_keys: dict[tuple[tuple[str, str], ...], str] = {}
    for pname, predictor in named():
        for demo in getattr(predictor, "demos", None) or []:
            for keys in key_sets:
                key = _input_key(demo, keys)
                if key is not None:
                    demo_keys.setdefault(key, pname)
    if not demo_keys:
        return 0
    hits = [(i, demo_keys[k]) for i, ex in enumerate(examples)
            if (k := _input_key(ex, ex.input_keys or ())) is not None and k in demo_keys]
    if hits:
        where = sorted({p for _, p in hits})
        warnings.warn(
            f"{len(hits)} of {len(examples)} evaluated examples (rows {[i for i, _ in hits][:10]}) also appear "
            f"among the demos of predictor(s) {where}: their scores are inflated. Evaluate on data the program "
            "did not learn from.", UserWarning, stacklevel=3)
    return len(hits)


def evaluate(
    program: Callable[..., Any],
    dataset: Iterable[Example],
    metric: Callable[..., Any],
    *,
    threads: int | None = None,
    progress: bool | str = True,
    errors: str = "zero",
    ci_level: float = 0.95,
    seed: int = 0,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    max_errors: int | None = None,
    stream: TextIO | None = None,
    label: str | None = None,
) -> EvalResult:
    """Run `program(**example.inputs())` on every example, score it with `metric`, return an EvalResult.

    threads: worker threads (default `settings().threads`; 1 runs in the calling thread). Workers see the
        caller's settings, LM and usage trackers.
    progress: a bar with ETA on stderr in terminals and notebooks; "always" forces it, False hides it.
    errors: how error rows count in the headline score — "zero" (scored 0, kept in n: a failure to answer
        is a wrong answer) or "exclude" (left out of n). `score_completed` always excludes them.
    max_errors: stop scheduling new rows once this many errors happened (the rest are marked not run).
    label: the progress bar's label (default: "evaluate <program>").
    """
    if errors not in ERROR_POLICIES:
        raise UsageError(f"errors={errors!r}: choose 'zero' (an error scores 0) or 'exclude' (left out of n)")
    if not 0.0 < ci_level < 1.0:
        raise UsageError(f"ci_level must be between 0 and 1 (e.g. 0.95), got {ci_level!r}")
    if max_errors is not None and max_errors < 1:
        raise UsageError(f"max_errors must be >= 1 (or None for no limit), got {max_errors!r}")
    if not callable(program) or not callable(metric):
        raise UsageError("evaluate(program, dataset, metric): program and metric must be callables")
    examples = list(dataset)
    for i, ex in enumerate(examples):
        if not isinstance(ex, Example) or ex.input_keys is None:
            raise UsageError(f"dataset row {i} is not an Example that knows its inputs ({ex!r}); "
                             "use Example(...).with_inputs('field', ...) or lp.Dataset(..., inputs=[...])")
    warn_demo_overlap(program, examples)
    n_threads = threads or settings().threads
    out = stream if stream is not None else sys.stderr
    bar = ProgressBar(len(examples), label=label or f"evaluate {_name(program)}", enabled=should_show(progress, out),
                      stream=out)
    rows: list[Row | None] = [None] * len(examples)
    interrupted, stopped = False, None
    started = time.perf_counter()
    with usage.track() as tracker:
        try:
            tally = _Tally(errors, max_errors)
            if n_threads <= 1 or len(examples) <= 1:
                stopped = _run_sequential(program, metric, examples, rows, bar, tally)
            else:
                stopped = _run_threaded(program, metric, examples, rows, bar, tally, n_threads)
        except KeyboardInterrupt:
            interrupted = True
    final = [r if r is not None else Row(i, examples[i], "not_run") for i, r in enumerate(rows)]
    result = EvalResult(final, metric=_name(metric), program=_name(program), error_policy=errors,
                        ci_level=ci_level, seed=seed, n_resamples=n_resamples, interrupted=interrupted,
                        stopped=stopped, usage=tracker.summary(), wall_time=time.perf_counter() - started)
    bar.close(note="interrupted" if interrupted else (stopped or ""))
    if interrupted or stopped:
        warnings.warn(f"evaluation {'interrupted' if interrupted else 'stopped: ' + str(stopped)}; "
                      f"{len(final) - len(result.not_run)} of {len(final)} rows ran. The result is partial "
                      f"(result.complete is False): {result.summary()}", UserWarning, stacklevel=2)
    return result


class _Tally:
    """Running counts for the progress bar and the `max_errors` check (O(1) per row)."""

    def __init__(self, policy: str, max_errors: int | None) -> None:
        self.policy = policy
        self.max_errors = max_errors
        self.done = self.errors = self.counted = 0
        self.total = 0.0

    def add(self, row: Row) -> None:
        self.done += 1
        if row.status == "ok":
            self.counted += 1
            self.total += row.score or 0.0
        elif row.status == "error":
            self.errors += 1
            self.counted += self.policy == "zero"

    def show(self, bar: ProgressBar) -> None:
        score = f"{100 * self.total / self.counted:.1f}%" if self.counted else "-"
        bar.update(self.done, score=score, errors=self.errors)

    def too_many(self) -> str | None:
        if self.max_errors is not None and self.errors >= self.max_errors:
            return f"max_errors={self.max_errors} reached ({self.errors} errors)"
        return None


def _run_sequential(program: Any, metric: Any, examples: list[Example], rows: list[Row | None],
                    bar: ProgressBar, tally: _Tally) -> str | None:
    for i, ex in enumerate(examples):
        try:
            rows[i] = row = _run_row(program, metric, i, ex)
        except _Stop as stop:
            return stop.reason
        tally.add(row)
        tally.show(bar)
        if tally.too_many() and i + 1 < len(examples):
            return tally.too_many()
    return None


def _run_threaded(program: Any, metric: Any, examples: list[Example], rows: list[Row | None],
                  bar: ProgressBar, tally: _Tally, n_threads: int) -> str | None:
    run = run_in_context(_run_row)  # workers see the caller's settings and usage trackers
    pool = cf.ThreadPoolExecutor(max_workers=min(n_threads, len(examples)), thread_name_prefix="lmprog-eval")
    futures = {pool.submit(run, program, metric, i, ex): i for i, ex in enumerate(examples)}
    pending = set(futures)
    stopped: str | None = None
    try:
        while pending:
            finished, pending = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
            raised: BaseException | None = None
            for fut in finished:
                exc = fut.exception()
                if isinstance(exc, _Stop):
                    stopped = stopped or exc.reason
                elif exc is not None:
                    raised = raised or exc  # e.g. KeyboardInterrupt in a worker: keep this batch's rows first
                else:
                    rows[futures[fut]] = row = fut.result()
                    tally.add(row)
            if raised is not None:
                raise raised
            tally.show(bar)
            stopped = stopped or tally.too_many()
            if stopped and pending:
                # Rows already running are paid for: let them finish and keep them; drop the queued ones.
                for fut in pending:
                    fut.cancel()
                for fut in cf.as_completed(pending):
                    if not fut.cancelled() and fut.exception() is None:
                        rows[futures[fut]] = fut.result()
                pending = set()
    except KeyboardInterrupt:
        # Do not wait for rows in flight: the user asked to stop now; their results are discarded.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return None if all(r is not None for r in rows) else stopped
