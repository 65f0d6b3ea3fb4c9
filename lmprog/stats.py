"""Statistics for evaluation as plain functions: bootstrap intervals, exact McNemar, paired permutation tests.

numpy is imported inside the functions that need it, so `import lmprog` (and `lmprog.stats`) stays light.
Exact tests (McNemar, Wilson) use only the standard library, and the bootstrap falls back to pure Python
when numpy is missing (slower; numpy comes with `pip install 'lmprog[stats]'`). Every random procedure takes a
`seed` and is reproducible: the same inputs and seed give the same interval or p-value.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from statistics import NormalDist
from typing import Any, NamedTuple

from .errors import UsageError

DEFAULT_RESAMPLES = 2000
# Bootstrap resamples are drawn in blocks so that memory stays bounded (~ this many floats at once).
_BLOCK_ELEMENTS = 4_000_000


class Interval(NamedTuple):
    """A confidence interval; unpacks as `low, high = ci`."""

    low: float
    high: float


@dataclass(frozen=True)
class TestResult:
    """The outcome of a paired test: which test ran, its statistic and its two-sided p-value."""

    test: str
    p_value: float
    statistic: float
    details: dict[str, Any] = field(default_factory=dict)


def _floats(values: Sequence[float | bool], name: str = "values") -> list[float]:
    out = []
    for i, v in enumerate(values):
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise UsageError(f"{name}[{i}] = {v!r} is not a number; statistics need numeric scores") from None
    return out


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise UsageError(f"confidence level must be between 0 and 1 (e.g. 0.95), got {level!r}")


def is_binary(values: Sequence[float | bool]) -> bool:
    """True when every value is 0 or 1 (a pass/fail metric)."""
    return all(float(v) in (0.0, 1.0) for v in values)


def mean(values: Sequence[float | bool]) -> float:
    """The arithmetic mean; NaN for no values (an empty evaluation has no score, not a score of 0)."""
    xs = _floats(values)
    return math.fsum(xs) / len(xs) if xs else math.nan


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _require_numpy(what: str) -> Any:
    np = _numpy()
    if np is None:
        raise ImportError(f"{what} needs numpy: pip install 'lmprog[stats]'")
    return np


def _bootstrap_means(xs: list[float], n_resamples: int, seed: int) -> list[float]:
    np = _numpy()
    if np is None:
        # Pure-Python path so evaluation works without the `stats` extra; seeded too, but its draws differ
        # from numpy's, so an interval can differ in the last digits between the two installs.
        rng = random.Random(seed)
        n = len(xs)
        return [math.fsum(rng.choices(xs, k=n)) / n for _ in range(n_resamples)]
    arr = np.asarray(xs, dtype=float)
    n = arr.size
    rng_np = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, block):
        stop = min(n_resamples, start + block)
        idx = rng_np.integers(0, n, size=(stop - start, n))
        means[start:stop] = arr[idx].mean(axis=1)
    return means.tolist()


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of already sorted values."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(
    values: Sequence[float | bool], level: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval for the mean of `values` (seeded, so reproducible).

    With no values the interval is (nan, nan); with one value, or all values equal, it has zero width —
    the bootstrap cannot see variation that the sample does not contain.
    """
    _check_level(level)
    if n_resamples < 1:
        raise UsageError(f"n_resamples must be >= 1, got {n_resamples}")
    xs = _floats(values)
    if not xs:
        return Interval(math.nan, math.nan)
    if min(xs) == max(xs):
        return Interval(xs[0], xs[0])
    means = sorted(_bootstrap_means(xs, n_resamples, seed))
    alpha = (1.0 - level) / 2.0
    return Interval(_quantile(means, alpha), _quantile(means, 1.0 - alpha))


def paired_bootstrap_ci(
    a: Sequence[float | bool],
    b: Sequence[float | bool],
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval for mean(b - a), resampling the pairs together (same examples)."""
    return bootstrap_ci(_differences(a, b), level=level, n_resamples=n_resamples, seed=seed)


def _differences(a: Sequence[float | bool], b: Sequence[float | bool]) -> list[float]:
    if len(a) != len(b):
        raise UsageError(f"paired statistics need equal lengths; got {len(a)} and {len(b)} scores")
    return [y - x for x, y in zip(_floats(a, "a"), _floats(b, "b"), strict=True)]


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a proportion: good coverage even for small n or rates near 0 or 1."""
    _check_level(level)
    if n < 0 or not 0 <= successes <= n:
        raise UsageError(f"wilson_interval needs 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return Interval(math.nan, math.nan)
    z = NormalDist().inv_cdf(1.0 - (1.0 - level) / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for discordant counts b (a right, b wrong) and c (the reverse).

    Under the null each discordant pair is equally likely to go either way, so the p-value is
    2 * P(Binomial(b + c, 1/2) <= min(b, c)), capped at 1. Computed in exact integer arithmetic.
    """
    if b < 0 or c < 0 or int(b) != b or int(c) != c:
        raise UsageError(f"mcnemar_exact needs non-negative integer counts, got b={b!r}, c={c!r}")
    n, k = int(b) + int(c), min(int(b), int(c))
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def paired_permutation_test(
    a: Sequence[float | bool], b: Sequence[float | bool], n_resamples: int = 10_000, seed: int = 0
) -> TestResult:
    """Two-sided sign-flip permutation test of mean(b - a) = 0 for paired scores.

    Under the null the sign of each difference is exchangeable. When 2**n_nonzero <= n_resamples all sign
    patterns are enumerated (an exact p-value); otherwise random flips are drawn and the p-value is the
    conservative (hits + 1) / (n_resamples + 1).
    """
    diffs = [d for d in _differences(a, b) if d != 0.0]
    n_pairs = len(a)
    observed = math.fsum(_differences(a, b)) / n_pairs if n_pairs else 0.0
    if not diffs:
        return TestResult("paired permutation", 1.0, observed, {"exact": True, "n_nonzero": 0})
    np = _require_numpy("the paired permutation test")

    d = np.asarray(diffs)
    obs = abs(d.sum())
    tol = 1e-9 * max(1.0, float(np.abs(d).sum()))
    if 2 ** d.size <= n_resamples:
        # Enumerate every sign pattern: row i of `signs` is the binary expansion of i.
        bits = (np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1
        sums = np.abs(((1 - 2 * bits) * d).sum(axis=1))
        p = float(np.mean(sums >= obs - tol))
        return TestResult("paired permutation", p, observed, {"exact": True, "n_nonzero": int(d.size)})
    rng = np.random.default_rng(seed)
    hits = 0
    block = max(1, _BLOCK_ELEMENTS // d.size)
    for start in range(0, n_resamples, block):
        m = min(block, n_resamples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(m, d.size))
        hits += int(np.sum(np.abs(signs @ d) >= obs - tol))
    p = (hits + 1) / (n_resamples + 1)
    return TestResult("paired permutation", p, observed,
                      {"exact": False, "n_nonzero": int(d.size), "n_resamples": n_resamples, "seed": seed})


def paired_test(
    a: Sequence[float | bool], b: Sequence[float | bool], n_resamples: int = 10_000, seed: int = 0
) -> TestResult:
    """The right paired test for the scores: exact McNemar when both are 0/1, else a paired permutation test."""
    if len(a) != len(b):
        raise UsageError(f"paired_test needs scores for the same examples; got {len(a)} and {len(b)} scores")
    if is_binary(a) and is_binary(b):
        fa, fb = _floats(a, "a"), _floats(b, "b")
        only_a = sum(1 for x, y in zip(fa, fb, strict=True) if x == 1.0 and y == 0.0)
        only_b = sum(1 for x, y in zip(fa, fb, strict=True) if x == 0.0 and y == 1.0)
        diff = (only_b - only_a) / len(fa) if fa else 0.0
        return TestResult("exact McNemar", mcnemar_exact(only_a, only_b), diff,
                          {"b": only_a, "c": only_b, "discordant": only_a + only_b})
    return paired_permutation_test(a, b, n_resamples=n_resamples, seed=seed)
