"""EvalResult: the rows of one evaluation, its score with a bootstrap interval, slices and reports.

Error rows are kept with their exception. The headline `score` counts them as the result's `error_policy`
says ("zero": an error scores 0 and stays in n; "exclude": errors leave n); `score_completed` is always the
mean over the rows that completed. Rows that never ran (interrupted or stopped runs) count in neither.
"""

from __future__ import annotations

import csv
import enum
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import stats
from .errors import UsageError
from .example import Example, Prediction
from .usage import CallRecord, totals_of

SCHEMA_VERSION = 1
ERROR_POLICIES = ("zero", "exclude")


@dataclass
class Row:
    """One example's outcome. `status` is "ok", "error" (the program or the metric raised) or "not_run"."""

    index: int
    example: Example
    status: str
    prediction: Any = None
    score: float | None = None
    error: BaseException | None = None
    """The exception itself (None after loading a saved report; `error_info` survives saving)."""
    error_info: dict[str, Any] | None = None
    """{"type", "message", "stage": "program" | "metric", "traceback"}."""
    latency: float | None = None
    usage: list[CallRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        ex = self.example
        known = ex.input_keys is not None
        return {
            "index": self.index,
            "status": self.status,
            "inputs": jsonable(dict(ex.inputs().items()) if known else {}),
            "labels": jsonable(dict(ex.labels().items()) if known else dict(ex.items())),
            "outputs": jsonable(dict(self.prediction.items())) if isinstance(self.prediction, Example) else (
                jsonable(self.prediction) if self.prediction is not None else None),
            "score": self.score,
            "error": self.error_info,
            "latency": self.latency,
            "usage": [r.to_dict() for r in self.usage],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        inputs, labels = d.get("inputs") or {}, d.get("labels") or {}
        ex = Example({**inputs, **labels})
        if inputs:
            ex = ex.with_inputs(*inputs)
        outputs = d.get("outputs")
        pred = Prediction(outputs) if isinstance(outputs, dict) else outputs
        return cls(index=d["index"], example=ex, status=d["status"], prediction=pred, score=d.get("score"),
                   error_info=d.get("error"), latency=d.get("latency"),
                   usage=[CallRecord(**r) for r in d.get("usage") or []])


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a field value (pydantic models dumped, enums by value, the rest as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping) or isinstance(value, Example):
        return {str(k): jsonable(value[k]) for k in value.keys()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    return str(value)


@dataclass(frozen=True)
class SliceScore:
    """The score of the rows sharing one value of an example field."""

    score: float
    ci: stats.Interval
    n: int
    errors: int


class EvalResult:
    """What `evaluate` returns: `score`, `ci`, `n`, `rows`, `errors`, `score_completed`, usage and cost."""

    def __init__(self, rows: list[Row], *, metric: str = "", program: str = "", error_policy: str = "zero",
                 ci_level: float = 0.95, seed: int = 0, n_resamples: int = stats.DEFAULT_RESAMPLES,
                 interrupted: bool = False, stopped: str | None = None, usage: dict[str, Any] | None = None,
                 wall_time: float = 0.0) -> None:
        if error_policy not in ERROR_POLICIES:
            raise UsageError(f"errors={error_policy!r}: choose 'zero' (an error scores 0) or 'exclude'")
        self.rows = rows
        self.metric = metric
        self.program = program
        self.error_policy = error_policy
        self.ci_level = ci_level
        self.seed = seed
        self.n_resamples = n_resamples
        self.interrupted = interrupted
        self.stopped = stopped
        self.usage = usage if usage is not None else {"total": totals_of([r for x in rows for r in x.usage]).to_dict()}
        self.wall_time = wall_time

    # -- rows -----------------------------------------------------------------------------------------------
    @property
    def completed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "ok"]

    @property
    def errors(self) -> list[Row]:
        """Rows whose program or metric raised; `row.error` holds the exception."""
        return [r for r in self.rows if r.status == "error"]

    @property
    def not_run(self) -> list[Row]:
        return [r for r in self.rows if r.status == "not_run"]

    @property
    def complete(self) -> bool:
        """True when every row ran (not interrupted, not stopped early)."""
        return not self.not_run

    def scores(self, rows: list[Row] | None = None, policy: str | None = None) -> list[float]:
        """Per-row scores counted in the headline: completed rows, plus errors as 0 under policy "zero"."""
        policy = policy or self.error_policy
        out = []
        for r in self.rows if rows is None else rows:
            if r.status == "ok":
                out.append(float(r.score or 0.0))
            elif r.status == "error" and policy == "zero":
                out.append(0.0)
        return out

    # -- headline -------------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """How many rows the headline score averages over."""
        return len(self.scores())

    @property
    def score(self) -> float:
        return stats.mean(self.scores())

    @functools.cached_property
    def ci(self) -> stats.Interval:
        return stats.bootstrap_ci(self.scores(), self.ci_level, self.n_resamples, self.seed)

    @property
    def score_completed(self) -> float:
        """The mean over rows that completed, errors left out whatever the policy."""
        return stats.mean(self.scores(policy="exclude"))

    @functools.cached_property
    def ci_completed(self) -> stats.Interval:
        return stats.bootstrap_ci(self.scores(policy="exclude"), self.ci_level, self.n_resamples, self.seed)

    @property
    def binary(self) -> bool:
        return stats.is_binary(self.scores())

    @property
    def cost(self) -> float:
        return float(self.usage.get("total", {}).get("cost", 0.0))

    @property
    def calls(self) -> int:
        return int(self.usage.get("total", {}).get("calls", 0))

    # -- slices ---------------------------------------------------------------------------------------------
    def by(self, field: str) -> dict[Any, SliceScore]:
        """Score with its interval per value of an example field, e.g. `result.by("category")`."""
        if not any(field in r.example for r in self.rows):
            raise UsageError(f"no example has the field {field!r}; fields: {sorted(self.rows[0].example.keys())}"
                             if self.rows else "the result has no rows to slice")
        groups: dict[Any, list[Row]] = {}
        for r in self.rows:
            value = r.example.get(field)
            key = value if isinstance(value, (str, int, float, bool, type(None))) else json.dumps(jsonable(value))
            groups.setdefault(key, []).append(r)
        out = {}
        for key, rows in groups.items():
            vals = self.scores(rows)
            out[key] = SliceScore(stats.mean(vals), stats.bootstrap_ci(vals, self.ci_level, self.n_resamples,
                                                                        self.seed),
                                  len(vals), sum(r.status == "error" for r in rows))
        return out

    # -- text -----------------------------------------------------------------------------------------------
    def counting_note(self) -> str:
        """How errors and rows that did not run were counted in the headline score."""
        e, nr = len(self.errors), len(self.not_run)
        parts = []
        if e:
            parts.append(f"{e} error{'s' * (e != 1)} " + (
                "counted as 0" if self.error_policy == "zero" else "excluded"))
        if nr:
            why = "interrupted" if self.interrupted else (self.stopped or "stopped")
            parts.append(f"{nr} not run ({why}), excluded")
        return "; ".join(parts)

    def summary(self) -> str:
        lo, hi = self.ci
        pct = f"{self.ci_level:.0%}"
        text = f"{self.metric or 'score'}: {_pct(self.score)} ({pct} CI {_pct(lo)}–{_pct(hi)}), n={self.n}"
        note = self.counting_note()
        if note:
            text += f"; {note}; over completed rows {_pct(self.score_completed)}"
        if self.calls:
            text += f"; {self.calls} LM calls, cost ${self.cost:.4f}"
        return text

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"EvalResult({self.summary()})"

    def to_markdown(self, by: str | None = None, max_errors: int = 20) -> str:
        """A Markdown report: the headline, optional slices, and the errors (type, message) with their inputs."""
        lo, hi = self.ci
        lines = [f"## {self.program or 'program'} · {self.metric or 'metric'}", "",
                 "| score | CI | n | errors | not run | score (completed) | LM calls | cost |",
                 "|---|---|---|---|---|---|---|---|",
                 f"| {_pct(self.score)} | {_pct(lo)}–{_pct(hi)} ({self.ci_level:.0%}) | {self.n} | "
                 f"{len(self.errors)} | {len(self.not_run)} | {_pct(self.score_completed)} | {self.calls} | "
                 f"${self.cost:.4f} |", ""]
        note = self.counting_note()
        if note:
            lines += [f"Counting: {note}.", ""]
        if by is not None:
            lines += [f"| {by} | score | CI | n | errors |", "|---|---|---|---|---|"]
            for key, s in self.by(by).items():
                lines.append(f"| {_md(key)} | {_pct(s.score)} | {_pct(s.ci.low)}–{_pct(s.ci.high)} | {s.n} | "
                             f"{s.errors} |")
            lines.append("")
        if self.errors:
            lines += ["| row | error | inputs |", "|---|---|---|"]
            for r in self.errors[:max_errors]:
                info = r.error_info or {}
                inputs = json.dumps(Row.to_dict(r)["inputs"], ensure_ascii=False)
                lines.append(f"| {r.index} | {_md(info.get('type'))}: {_md(info.get('message'))} | {_md(inputs)} |")
            if len(self.errors) > max_errors:
                lines.append(f"| … | {len(self.errors) - max_errors} more | |")
            lines.append("")
        return "\n".join(lines)

    # -- files ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.ci
        return {
            "schema_version": SCHEMA_VERSION,
            "program": self.program, "metric": self.metric, "error_policy": self.error_policy,
            "score": _nan_none(self.score), "ci": [_nan_none(lo), _nan_none(hi)], "ci_level": self.ci_level,
            "n": self.n, "score_completed": _nan_none(self.score_completed), "errors": len(self.errors),
            "not_run": len(self.not_run), "interrupted": self.interrupted, "stopped": self.stopped,
            "seed": self.seed, "n_resamples": self.n_resamples, "wall_time": self.wall_time,
            "usage": self.usage, "rows": [r.to_dict() for r in self.rows],
        }

    def save(self, path: str | Path) -> Path:
        """Write every row: JSON for `.json` (loadable with `EvalResult.load`), a flat table for `.csv`."""
        p = Path(path)
        if p.suffix.lower() == ".json":
            p.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        elif p.suffix.lower() == ".csv":
            self._write_csv(p)
        else:
            raise UsageError(f"save({str(path)!r}): use a .json or .csv file name")
        return p

    def _write_csv(self, p: Path) -> None:
        dicts = [r.to_dict() for r in self.rows]
        cols: dict[str, None] = {}
        for part in ("inputs", "labels", "outputs"):
            for d in dicts:
                for k in (d[part] or {}) if isinstance(d[part], dict) else ():
                    cols[f"{part[:-1] if part != 'inputs' else 'input'}.{k}"] = None
        header = ["index", "status", *cols, "score", "error_type", "error_message", "error_stage", "latency",
                  "calls", "tokens", "cost"]
        with p.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for d, r in zip(dicts, self.rows, strict=True):
                flat = {f"input.{k}": v for k, v in d["inputs"].items()}
                flat.update({f"label.{k}": v for k, v in d["labels"].items()})
                if isinstance(d["outputs"], dict):
                    flat.update({f"output.{k}": v for k, v in d["outputs"].items()})
                err = d["error"] or {}
                t = totals_of(r.usage)
                w.writerow([d["index"], d["status"], *(_cell(flat.get(c)) for c in cols), _cell(d["score"]),
                            err.get("type", ""), err.get("message", ""), err.get("stage", ""),
                            _cell(d["latency"]), t.calls, t.total_tokens, t.cost])

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """Read a report written by `save(... .json)`; exceptions come back as `row.error_info` only."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read evaluation report {str(p)!r}: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise UsageError(f"{str(p)!r} is not an lmprog evaluation report (schema {SCHEMA_VERSION})")
        return cls([Row.from_dict(d) for d in data["rows"]], metric=data.get("metric", ""),
                   program=data.get("program", ""), error_policy=data.get("error_policy", "zero"),
                   ci_level=data.get("ci_level", 0.95), seed=data.get("seed", 0),
                   n_resamples=data.get("n_resamples", stats.DEFAULT_RESAMPLES),
                   interrupted=data.get("interrupted", False), stopped=data.get("stopped"),
                   usage=data.get("usage"), wall_time=data.get("wall_time", 0.0))

    def plot(self, path: str | Path, by: str | None = None) -> Path:
        """A PNG of the score with its interval, one bar per slice value when `by` names an example field."""
        if by is None:
            return plot_results({self.program or "program": self}, path)
        bars = {str(k): (s.score, s.ci) for k, s in self.by(by).items()}
        return _plot_bars(bars, path, title=f"{self.metric or 'score'} by {by}")


def plot_results(results: Mapping[str, EvalResult], path: str | Path) -> Path:
    """A PNG comparing several results (e.g. {"base": r1, "compiled": r2}) with their intervals."""
    bars = {name: (r.score, r.ci) for name, r in results.items()}
    metric = next((r.metric for r in results.values() if r.metric), "score")
    return _plot_bars(bars, path, title=metric)


def _plot_bars(bars: dict[str, tuple[float, stats.Interval]], path: str | Path, title: str) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plotting needs matplotlib: pip install 'lmprog[plot]'") from None
    names = list(bars)
    means = [bars[n][0] for n in names]
    lows = [max(0.0, m - bars[n][1].low) for n, m in zip(names, means, strict=True)]
    highs = [max(0.0, bars[n][1].high - m) for n, m in zip(names, means, strict=True)]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.8 * len(names)), 3.5))
    try:
        ax.bar(names, means, yerr=[lows, highs], capsize=4, color="#4c78a8")
        ax.set_ylim(0, max(1.0, max((m + h for m, h in zip(means, highs, strict=True)), default=1.0)))
        ax.set_ylabel("score")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _nan_none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


def _md(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    return v if isinstance(v, (str, int, float)) else json.dumps(v, ensure_ascii=False)
