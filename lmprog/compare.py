"""`compare(a, b)`: is result b better than result a on the same examples, beyond noise, and where?

The difference is mean(b) - mean(a) over paired rows, with a paired bootstrap interval and a paired test
(exact McNemar for pass/fail metrics, a sign-flip permutation test otherwise). Flips list the examples
that changed side: positive flips were wrong in a and right in b, negative flips the reverse (regressions).

Rows that did not run in either result are dropped. Error rows follow `errors=`: "zero" (default) scores
an error 0 — a failure to answer is a wrong answer, so a new version that crashes more is worse — and
"exclude" drops every pair where either side errored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from . import stats
from .errors import UsageError
from .eval_result import EvalResult, Row, jsonable


@dataclass(frozen=True)
class Flip:
    """One example that one result gets right and the other wrong."""

    index: int
    example: Any
    score_a: float
    score_b: float
    prediction_a: Any
    prediction_b: Any
    error_a: dict[str, Any] | None = None
    error_b: dict[str, Any] | None = None


@dataclass
class Comparison:
    """The paired comparison of two evaluation results (b relative to a)."""

    name_a: str
    name_b: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci: stats.Interval
    ci_level: float
    test: str
    p_value: float
    positive_flips: list[Flip] = field(default_factory=list)
    negative_flips: list[Flip] = field(default_factory=list)
    error_policy: str = "zero"
    dropped: int = 0
    threshold: float = 0.5
    binary: bool = True

    @property
    def significant(self) -> bool:
        """True when the paired test rejects "no difference" at 1 - ci_level (e.g. p < 0.05)."""
        return self.p_value < 1.0 - self.ci_level

    def summary(self, max_flips: int = 5) -> str:
        lo, hi = self.ci
        verdict = ("b is better" if self.diff > 0 else "b is worse") if self.significant else \
            "no significant difference"
        lines = [
            f"{self.name_b} vs {self.name_a} on {self.n} paired examples: "
            f"{_pct(self.mean_b)} vs {_pct(self.mean_a)}",
            f"difference {_signed(self.diff)} ({self.ci_level:.0%} CI {_signed(lo)} to {_signed(hi)}), "
            f"{self.test} p = {self.p_value:.4g} → {verdict}",
            f"flips: {len(self.positive_flips)} wrong→right, {len(self.negative_flips)} right→wrong"
            + ("" if self.binary else f" (right means score >= {self.threshold})"),
            f"errors {'scored 0' if self.error_policy == 'zero' else 'excluded pairwise'}"
            + (f"; {self.dropped} pairs dropped" if self.dropped else ""),
        ]
        for title, flips in (("regressions (right in a, wrong in b)", self.negative_flips),
                             ("improvements (wrong in a, right in b)", self.positive_flips)):
            if flips:
                lines.append(f"{title}:")
                for f in flips[:max_flips]:
                    inputs = f.example.inputs() if getattr(f.example, "input_keys", None) is not None else f.example
                    lines.append(f"  row {f.index}: {_clip(json.dumps(jsonable(inputs), ensure_ascii=False))}")
                if len(flips) > max_flips:
                    lines.append(f"  ... {len(flips) - max_flips} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        def flip(f: Flip) -> dict[str, Any]:
            return {"index": f.index, "example": jsonable(f.example), "score_a": f.score_a, "score_b": f.score_b,
                    "prediction_a": jsonable(f.prediction_a), "prediction_b": jsonable(f.prediction_b),
                    "error_a": f.error_a, "error_b": f.error_b}

        return {"a": self.name_a, "b": self.name_b, "n": self.n, "mean_a": self.mean_a, "mean_b": self.mean_b,
                "diff": self.diff, "ci": list(self.ci), "ci_level": self.ci_level, "test": self.test,
                "p_value": self.p_value, "error_policy": self.error_policy, "dropped": self.dropped,
                "positive_flips": [flip(f) for f in self.positive_flips],
                "negative_flips": [flip(f) for f in self.negative_flips]}


def _key(row: Row) -> str:
    return json.dumps(jsonable(row.example), sort_keys=True, ensure_ascii=False)


def _align(a: EvalResult, b: EvalResult) -> list[tuple[Row, Row]]:
    if len(a.rows) != len(b.rows):
        raise UsageError(f"compare needs results over the same examples: a has {len(a.rows)} rows, "
                         f"b has {len(b.rows)}")
    keys_a, keys_b = [_key(r) for r in a.rows], [_key(r) for r in b.rows]
    if keys_a == keys_b:
        return list(zip(a.rows, b.rows, strict=True))
    # Same examples in another order: pair them by content when every example is unique.
    if sorted(keys_a) == sorted(keys_b) and len(set(keys_a)) == len(keys_a):
        pos = {k: i for i, k in enumerate(keys_b)}
        return [(ra, b.rows[pos[k]]) for ra, k in zip(a.rows, keys_a, strict=True)]
    first = next(i for i, (x, y) in enumerate(zip(keys_a, keys_b, strict=True)) if x != y)
    raise UsageError(f"compare needs results over the same examples; row {first} differs: "
                     f"a has {_clip(keys_a[first])}, b has {_clip(keys_b[first])}")


def _value(row: Row, policy: str) -> float | None:
    if row.status == "ok":
        return float(row.score or 0.0)
    if row.status == "error" and policy == "zero":
        return 0.0
    return None


def compare(a: EvalResult, b: EvalResult, *, errors: str = "zero", threshold: float = 0.5,
            ci_level: float | None = None, seed: int = 0, n_resamples: int = 10_000,
            names: tuple[str, str] | None = None) -> Comparison:
    """Paired comparison of b against a: difference with CI, paired test p-value, and flips.

    names: labels for the summary (default: the programs' names, or "a" and "b" when those coincide).

    threshold: a row counts as right when its score >= threshold (for 0/1 metrics: when it passed).
    """
    if errors not in ("zero", "exclude"):
        raise UsageError(f"errors={errors!r}: choose 'zero' (an error scores 0) or 'exclude' (drop the pair)")
    if not isinstance(a, EvalResult) or not isinstance(b, EvalResult):
        raise UsageError("compare(a, b) takes two EvalResults returned by lp.evaluate")
    level = ci_level if ci_level is not None else a.ci_level
    pairs = _align(a, b)
    kept: list[tuple[Row, Row, float, float]] = []
    for ra, rb in pairs:
        va, vb = _value(ra, errors), _value(rb, errors)
        if va is not None and vb is not None:
            kept.append((ra, rb, va, vb))
    sa, sb = [k[2] for k in kept], [k[3] for k in kept]
    result = stats.paired_test(sa, sb, n_resamples=n_resamples, seed=seed)
    pos: list[Any] = []
    neg: list[Any] = []
    for ra, rb, va, vb in kept:
        right_a, right_b = va >= threshold, vb >= threshold
        if right_a != right_b:
            flip = Flip(ra.index, ra.example, va, vb, ra.prediction, rb.prediction, ra.error_info, rb.error_info)
            (pos if right_b else neg).append(flip)
    mean_a, mean_b = stats.mean(sa), stats.mean(sb)
    if names is None:
        names = (a.program, b.program) if a.program and b.program and a.program != b.program else ("a", "b")
    return Comparison(
        name_a=names[0], name_b=names[1], n=len(kept), mean_a=mean_a, mean_b=mean_b,
        diff=mean_b - mean_a if kept else math.nan,
        ci=stats.paired_bootstrap_ci(sa, sb, level=level, n_resamples=n_resamples, seed=seed), ci_level=level,
        test=result.test, p_value=result.p_value, positive_flips=pos, negative_flips=neg, error_policy=errors,
        dropped=len(pairs) - len(kept), threshold=threshold, binary=stats.is_binary(sa + sb))


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _signed(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:+.1f} pts"


def _clip(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
