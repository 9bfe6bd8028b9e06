"""Statistics against hand-computed values: the t table against the t distribution itself, Wilson intervals
against published values, the two-level bootstrap on cases whose percentiles follow by hand."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from skillexp.report.stats import (T95, Stats, clip_nonnegative, clip_unit, curve_band, hierarchical_bootstrap,
                                   newcombe,
                                   resample_means, summarize, t_quantile_95, wilson)


def t_cdf(t: float, df: float, steps: int = 4000) -> float:
    """P(T <= t) for t >= 0 by Simpson's rule over the density: an independent check of the table."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(x: float) -> float:
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    h = t / steps
    total = pdf(0) + pdf(t) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, steps))
    return 0.5 + total * h / 3


@pytest.mark.parametrize("df", sorted(T95))
def test_table_is_the_975_quantile(df: int) -> None:
    assert t_cdf(T95[df], df) == pytest.approx(0.975, abs=2e-5)


@pytest.mark.parametrize("df,exact", [(35, 2.0301), (50, 2.0086), (90, 1.9867), (1000, 1.9623)])
def test_interpolation_between_rows(df: int, exact: float) -> None:
    assert t_quantile_95(df) == pytest.approx(exact, abs=2e-3)
    assert t_cdf(t_quantile_95(df), df) == pytest.approx(0.975, abs=3e-4)


def test_bad_df() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile_95(0)


def test_summarize_three_seeds() -> None:
    s = summarize([0.2, 0.4, 0.6])
    half = 4.3027 * 0.2 / math.sqrt(3)  # t_{0.975, 2} · std / √n
    assert (s.n, s.mean, s.std) == (3, pytest.approx(0.4), pytest.approx(0.2))
    assert (s.ci_low, s.ci_high, s.ci_half) == (pytest.approx(0.4 - half), pytest.approx(0.4 + half),
                                                pytest.approx(half))
    assert s.interval == "t"


def test_summarize_two_seeds_and_equal_values() -> None:
    s = summarize([0.5, 0.7])
    assert s.std == pytest.approx(math.sqrt(0.02))
    assert s.ci_half == pytest.approx(12.7062 * math.sqrt(0.02) / math.sqrt(2))
    same = summarize([0.3, 0.3, 0.3, 0.3])
    assert (same.std, same.ci_low, same.ci_high) == (0.0, pytest.approx(0.3), pytest.approx(0.3))


def test_summarize_one_and_no_seed() -> None:
    one = summarize([0.25])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_half, one.interval) == (1, 0.25, None, None, None, None)
    assert summarize([]) is None


def test_curve_band_seeds_of_different_length() -> None:
    steps, mean, std = curve_band([{1: 0.1, 2: 0.2, 3: 0.3}, {1: 0.3, 2: 0.4}])
    assert steps == [1, 2, 3]
    assert mean == pytest.approx([0.2, 0.3, 0.3])
    assert std == pytest.approx([math.sqrt(0.02), math.sqrt(0.02), 0.0])


def test_clip_unit() -> None:
    """The issue's own cell: 0.271 ± 0.324 over 2 seeds gave [-2.641, 3.183]; cut to [0, 1] and named."""
    wide = summarize([0.5, 0.042])
    assert wide.ci_low < 0 and wide.ci_high > 1
    clipped = clip_unit(wide)
    assert (clipped.ci_low, clipped.ci_high, clipped.interval) == (0.0, 1.0, "t_clipped")
    assert clip_unit(Stats(1, 0.3)) == Stats(1, 0.3)  # nothing to clip


def test_clip_nonnegative() -> None:
    """A count over 2 seeds (the CPU study's answers per completion, 0.135 ± 0.162) gave [-1.321, 1.591]."""
    wide = summarize([0.25, 0.02])
    clipped = clip_nonnegative(wide)
    assert (clipped.ci_low, clipped.ci_high, clipped.interval) == (0.0, wide.ci_high, "t_nonnegative")
    narrow = summarize([1.2, 1.4, 1.6])
    assert clip_nonnegative(narrow) == narrow  # nothing below 0: the plain t interval


@pytest.mark.parametrize("successes,n,low,high", [
    (0, 10, 0.0, 0.2775),  # upper bound z²/(n + z²) = 3.8415/13.8415
    (10, 10, 0.7225, 1.0),
    (3, 10, 0.1078, 0.6032),  # Newcombe (1998), Table I
    (50, 100, 0.4038, 0.5962),
])
def test_wilson_known_values(successes: int, n: int, low: float, high: float) -> None:
    assert wilson(successes, n) == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))


def test_wilson_bad_input() -> None:
    for successes, n in ((1, 0), (-1, 10), (11, 10)):
        with pytest.raises(ValueError, match="wilson needs"):
            wilson(successes, n)


@pytest.mark.parametrize("x1,n1,x2,n2,low,high", [  # Newcombe (1998), Table II, method 10
    (56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090), (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926), (0, 10, 0, 20, -0.1611, 0.2775), (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0)])
def test_newcombe_known_values(x1: int, n1: int, x2: int, n2: int, low: float, high: float) -> None:
    assert newcombe(x1, n1, x2, n2) == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))


def test_resample_means_has_the_bootstrap_distribution() -> None:
    """Means of n draws with replacement: expectation the mean, variance the population variance / n."""
    values = [0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.25]
    means = resample_means(values, (200_000,), np.random.default_rng(1))
    assert means.mean() == pytest.approx(statistics.fmean(values), abs=2e-3)
    assert means.var() == pytest.approx(statistics.pvariance(values) / len(values), rel=0.02)
    assert means.min() >= 0.0 and means.max() <= 1.0


def test_bootstrap_degenerate_cases() -> None:
    assert hierarchical_bootstrap([[[0.3]]]) == (pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.3))
    assert hierarchical_bootstrap([[[1.0] * 5, [1.0] * 3]] * 3) == (1.0, 1.0, 1.0)  # all equal, several seeds
    assert hierarchical_bootstrap([[[0.0] * 4]] * 2) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="at least one seed"):
        hierarchical_bootstrap([[[]]])


def test_bootstrap_one_seed_is_the_question_bootstrap() -> None:
    """One seed of 100 questions, half right: the percentile interval is 0.5 ± 1.96 · √(0.25 / 100)."""
    estimate, low, high = hierarchical_bootstrap([[[1.0] * 50 + [0.0] * 50]])
    assert estimate == 0.5
    assert (low, high) == (pytest.approx(0.402, abs=0.01), pytest.approx(0.598, abs=0.01))


def test_bootstrap_resamples_the_seeds() -> None:
    """Seed 0 gets every question right, seed 1 none: a resample draws seed 0 twice (1/4: mean 1), once (1/2: 0.5)
    or never (1/4: 0), so the 2.5% and 97.5% percentiles are 0 and 1. Resampling questions alone would give
    [0.5, 0.5]: the spread between seeds is what the seed level counts."""
    assert hierarchical_bootstrap([[[1.0] * 12], [[0.0] * 12]]) == (0.5, 0.0, 1.0)


def test_bootstrap_strata_and_bounds() -> None:
    """Random scores of 3 seeds × 4 variants: the estimate is the mean of the variant means, the interval lies in
    [0, 1] around it, and the fixed RNG seed makes it reproducible."""
    rng = np.random.default_rng(7)
    seeds = [[list(rng.integers(0, 5, size=int(rng.integers(1, 30))) / 4) for _ in range(4)] for _ in range(3)]
    estimate, low, high = hierarchical_bootstrap(seeds)
    assert estimate == pytest.approx(statistics.fmean(statistics.fmean(map(statistics.fmean, s)) for s in seeds))
    assert 0.0 <= low < estimate < high <= 1.0
    assert hierarchical_bootstrap(seeds) == (estimate, low, high)
    assert hierarchical_bootstrap(seeds, rng_seed=1) != (estimate, low, high)
    # paired differences live in [-1, 1]
    _, low, high = hierarchical_bootstrap([[[1.0, -1.0, 0.0, 1.0]], [[-1.0, -1.0, 0.5, 0.0]]])
    assert -1.0 <= low < 0 < high <= 1.0
