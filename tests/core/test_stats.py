"""lmprog.stats: intervals that cover at their nominal rate, exact tests that match hand computations."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest

from lmprog import stats
from lmprog.errors import UsageError


def _coverage(p: float, n: int, trials: int, level: float, seed: int) -> float:
    rng = random.Random(seed)
    hits = 0
    for t in range(trials):
        sample = [1.0 if rng.random() < p else 0.0 for _ in range(n)]
        lo, hi = stats.bootstrap_ci(sample, level=level, n_resamples=1000, seed=t)
        hits += lo <= p <= hi
    return hits / trials


def test_bootstrap_ci_covers_the_true_mean_near_the_nominal_rate() -> None:
    # 200 simulated Bernoulli(0.7) samples of n=100. The coverage estimate has binomial noise of
    # sqrt(0.95 * 0.05 / 200) ≈ 1.5 points; percentile intervals also undercover slightly at n=100.
    level, trials = 0.95, 200
    coverage = _coverage(p=0.7, n=100, trials=trials, level=level, seed=1)
    noise = math.sqrt(level * (1 - level) / trials)
    assert abs(coverage - level) <= 3 * noise + 0.01, coverage


def test_lower_level_gives_lower_coverage_and_narrower_intervals() -> None:
    # The band test alone could pass with intervals that ignore `level`; this one cannot.
    cov80 = _coverage(p=0.5, n=80, trials=200, level=0.80, seed=2)
    assert abs(cov80 - 0.80) <= 3 * math.sqrt(0.8 * 0.2 / 200) + 0.01, cov80
    sample = [1.0] * 30 + [0.0] * 50
    w80 = stats.bootstrap_ci(sample, level=0.80)
    w95 = stats.bootstrap_ci(sample, level=0.95)
    assert (w80.high - w80.low) < (w95.high - w95.low)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8]
    a = stats.bootstrap_ci(values, seed=3)
    assert a == stats.bootstrap_ci(values, seed=3)
    assert a != stats.bootstrap_ci(values, seed=4)
    assert a.low < stats.mean(values) < a.high
    lo, hi = a  # unpacks as a pair
    assert 0.1 <= lo < hi <= 0.9


def test_bootstrap_ci_edge_cases() -> None:
    assert all(math.isnan(x) for x in stats.bootstrap_ci([]))
    assert stats.bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert math.isnan(stats.mean([]))
    with pytest.raises(UsageError, match="level"):
        stats.bootstrap_ci([0, 1], level=95)
    with pytest.raises(UsageError, match="not a number"):
        stats.bootstrap_ci([0, "x"])


def test_paired_bootstrap_ci_is_about_b_minus_a() -> None:
    a = [0, 0, 1, 0, 1, 0, 0, 1, 0, 0] * 5
    b = [1, 0, 1, 1, 1, 0, 1, 1, 0, 1] * 5
    lo, hi = stats.paired_bootstrap_ci(a, b)
    assert 0 < lo < 0.4 < hi  # mean(b - a) = 0.4
    with pytest.raises(UsageError, match="equal lengths"):
        stats.paired_bootstrap_ci([1, 0], [1])


def test_mcnemar_exact_matches_a_hand_computed_binomial() -> None:
    # b=1, c=6: n=7 discordant pairs; P(X <= 1) = (C(7,0) + C(7,1)) / 2^7 = 8/128; two-sided: 16/128.
    assert stats.mcnemar_exact(1, 6) == pytest.approx(0.125, abs=1e-12)
    assert stats.mcnemar_exact(6, 1) == pytest.approx(0.125, abs=1e-12)
    # b=0, c=5: 2 * 1/32 = 0.0625
    assert stats.mcnemar_exact(0, 5) == pytest.approx(0.0625, abs=1e-12)
    assert stats.mcnemar_exact(3, 3) == 1.0
    assert stats.mcnemar_exact(0, 0) == 1.0
    with pytest.raises(UsageError):
        stats.mcnemar_exact(-1, 2)


def test_mcnemar_exact_agrees_with_scipy_binomtest() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in [(2, 9), (10, 25), (40, 41), (0, 13)]:
        expected = scipy_stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
        assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9)


def test_wilson_interval() -> None:
    lo, hi = stats.wilson_interval(0, 10)
    # Textbook value for 0/10 at 95%: (0, 0.2775) — an interval above zero even with no successes.
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = stats.wilson_interval(50, 100)
    assert lo == pytest.approx(1 - hi) and 0.39 < lo < 0.41


def test_permutation_test_exact_enumeration_small_case() -> None:
    # Differences +1 four times: of the 16 sign patterns only all-plus and all-minus reach |sum| = 4.
    r = stats.paired_permutation_test([0.0] * 4, [1.0] * 4)
    assert r.details["exact"] and r.p_value == pytest.approx(2 / 16)
    assert stats.paired_permutation_test([0.3, 0.2], [0.3, 0.2]).p_value == 1.0


def test_permutation_test_detects_a_real_shift_and_not_a_null_one() -> None:
    rng = random.Random(5)
    a = [rng.random() for _ in range(60)]
    shifted = [x + 0.15 + rng.gauss(0, 0.1) for x in a]
    noise = [x + rng.gauss(0, 0.1) for x in a]
    assert stats.paired_permutation_test(a, shifted, n_resamples=2000).p_value < 0.01
    assert stats.paired_permutation_test(a, noise, n_resamples=2000).p_value > 0.05


def test_paired_test_picks_mcnemar_for_binary_and_permutation_otherwise() -> None:
    a = [1, 0, 1, 1, 0, 0, 1, 0]
    b = [1, 1, 1, 1, 1, 1, 0, 1]
    r = stats.paired_test(a, b)
    assert r.test == "exact McNemar" and r.details["b"] == 1 and r.details["c"] == 4
    assert r.p_value == pytest.approx(stats.mcnemar_exact(1, 4))
    r2 = stats.paired_test([0.5, 0.2, 0.9], [0.6, 0.4, 1.0])
    assert r2.test == "paired permutation"


def test_importing_stats_does_not_load_numpy() -> None:
    code = "import sys, lmprog, lmprog.stats; assert 'numpy' not in sys.modules, 'numpy loaded'; " \
           "lmprog.stats.bootstrap_ci([0, 1]); assert 'numpy' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bootstrap_without_numpy_gives_a_similar_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [1.0] * 60 + [0.0] * 40
    with_numpy = stats.bootstrap_ci(values, seed=0)
    monkeypatch.setitem(sys.modules, "numpy", None)  # `import numpy` now raises ImportError
    without = stats.bootstrap_ci(values, seed=0)
    assert without == stats.bootstrap_ci(values, seed=0)
    assert abs(without.low - with_numpy.low) < 0.03 and abs(without.high - with_numpy.high) < 0.03
    with pytest.raises(ImportError, match=r"lmprog\[stats\]"):
        stats.paired_permutation_test([0.1, 0.5, 0.2], [0.3, 0.2, 0.9])
