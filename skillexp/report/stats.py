"""Statistics of a report as pure functions: mean ± std over seeds, 95% intervals, reward-curve bands.

Intervals (the `interval` of a Stats says which one a cell got):
- "bootstrap": for accuracies (mean@k, pass@k, greedy...) with per-question scores, a two-level percentile
  bootstrap: resample the seeds, then the questions within each drawn seed. It covers both sources of noise a
  sweep has (training/sampling seed and the finite question set), and, as every resample is a mean of scores in
  [0, 1], its bounds lie in [0, 1]. Fixed RNG seed: a report is reproducible.
- "wilson": for accuracies without per-question scores, the Wilson score interval of the pooled count (questions ×
  samples × seeds). Inside [0, 1], but it treats every sample as independent, so it ignores how much questions
  and seeds differ and is narrower than the bootstrap would be.
- "t": for other metrics (tokens, skill-use counts), mean ± t_{0.975, n−1} · std / √n over seeds: with a handful
  of seeds the t quantile, not the normal one (3 seeds: 2.48 std instead of 1.13). SciPy is not a dependency, so
  the quantiles come from a table (exact to 4 decimals), interpolated in 1/df between its rows past df = 30.
- "t_clipped": the t interval cut to [0, 1], for bounded metrics that are not counted proportions (an F1).
- "newcombe": for a difference of two accuracies without per-question scores, Newcombe's interval from the two
  pooled counts' Wilson intervals (unpaired, so wider than a paired interval would be).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

# two-sided 95% quantiles t_{0.975, df}
T95 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060, 9: 2.2622,
       10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314, 16: 2.1199, 17: 2.1098, 18: 2.1009,
       19: 2.0930, 20: 2.0860, 21: 2.0796, 22: 2.0739, 23: 2.0687, 24: 2.0639, 25: 2.0595, 26: 2.0555, 27: 2.0518,
       28: 2.0484, 29: 2.0452, 30: 2.0423, 40: 2.0211, 60: 2.0003, 120: 1.9799}
Z975 = 1.959964  # the normal quantile: df = infinity, and Wilson's z
RESAMPLES = 4000
RNG_SEED = 0


def t_quantile_95(df: int) -> float:
    """t_{0.975, df}: from the table, linear in 1/df between its rows (the standard table interpolation)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df in T95:
        return T95[df]
    rows = sorted(T95.items()) + [(math.inf, Z975)]
    for (lo, t_lo), (hi, t_hi) in zip(rows, rows[1:]):
        if lo < df < hi:
            w = (1 / lo - 1 / df) / (1 / lo - 1 / hi)
            return t_lo + w * (t_hi - t_lo)
    raise AssertionError(df)  # every df >= 1 lies in the table or between two of its rows


@dataclass(frozen=True)
class Stats:
    """Summary of one cell: n values (one per seed), their mean and sample std (None with one seed), and a 95%
    interval (None when there is none) with the name of the method that gave it (module docstring)."""

    n: int
    mean: float
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    interval: str | None = None

    @property
    def ci_half(self) -> float | None:
        return None if self.ci_high is None else self.ci_high - self.mean

    def with_interval(self, low: float, high: float, method: str) -> Stats:
        return replace(self, ci_low=low, ci_high=high, interval=method)


def summarize(values: Sequence[float]) -> Stats | None:
    """Mean, sample std (n - 1) and the 95% t interval mean ± t_{0.975, n-1} · std / √n; None for no values."""
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Stats(1, mean)
    std = statistics.stdev(values)
    half = t_quantile_95(len(values) - 1) * std / math.sqrt(len(values))
    return Stats(len(values), mean, std, mean - half, mean + half, "t")


def clip_unit(stats: Stats) -> Stats:
    """A t interval cut to [0, 1], for a metric that cannot leave it."""
    if stats.ci_low is None or stats.ci_high is None:
        return stats
    return stats.with_interval(max(0.0, stats.ci_low), min(1.0, stats.ci_high), "t_clipped")


def clip_nonnegative(stats: Stats) -> Stats:
    """A t interval cut at 0, for a count or a length (which cannot be negative); unchanged if it does not reach
    below 0."""
    if stats.ci_low is None or stats.ci_high is None or stats.ci_low >= 0:
        return stats
    return stats.with_interval(max(0.0, stats.ci_low), stats.ci_high, "t_nonnegative")


def wilson(successes: float, n: float, z: float = Z975) -> tuple[float, float]:
    """The Wilson score interval of a proportion successes / n: always inside [0, 1], sensible at 0 and n."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson needs 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(successes_1: float, n_1: float, successes_2: float, n_2: float) -> tuple[float, float]:
    """The 95% interval of p1 − p2 for two independent proportions by Newcombe's hybrid score method (1998,
    method 10), built from their Wilson intervals: inside [−1, 1], sensible at 0 and n."""
    p1, p2 = successes_1 / n_1, successes_2 / n_2
    (low_1, high_1), (low_2, high_2) = wilson(successes_1, n_1), wilson(successes_2, n_2)
    d = p1 - p2
    return (max(-1.0, d - math.sqrt((p1 - low_1) ** 2 + (high_2 - p2) ** 2)),
            min(1.0, d + math.sqrt((high_1 - p1) ** 2 + (p2 - low_2) ** 2)))


def resample_means(values: Sequence[float], shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Means of independent resamples (with replacement, len(values) draws each) of `values`, one per entry of
    `shape`. Drawn as multinomial counts of the distinct values (sequential binomials), which has the same
    distribution as drawing items and costs O(distinct values), not O(len(values)), per resample."""
    distinct, counts = np.unique(np.asarray(values, dtype=float), return_counts=True)
    n = len(values)
    left = np.full(shape, n, dtype=np.int64)
    total = np.zeros(shape)
    p_left = 1.0
    for value, count in zip(distinct[:-1], counts[:-1]):
        p = count / n
        drawn = rng.binomial(left, min(1.0, p / p_left)) if p_left > 0 else np.zeros(shape, dtype=np.int64)
        total += drawn * value
        left -= drawn
        p_left -= p
    total += left * distinct[-1]
    return total / n


def hierarchical_bootstrap(seeds: Sequence[Sequence[Sequence[float]]], resamples: int = RESAMPLES,
                           rng_seed: int = RNG_SEED) -> tuple[float, float, float]:
    """`seeds[s][v]`: the per-question values of stratum v (a task variant) in seed s. The statistic is the mean
    over seeds of the mean over strata of the mean over questions; returns (statistic, low, high), the 2.5% and
    97.5% percentiles of the statistic over `resamples` two-level resamples: draw len(seeds) seeds with
    replacement, then within each drawn seed each stratum's questions with replacement (a seed drawn twice gets
    two independent question resamples)."""
    if not seeds or any(not strata or any(len(q) == 0 for q in strata) for strata in seeds):
        raise ValueError("hierarchical_bootstrap needs at least one seed, and questions in every stratum")
    rng = np.random.default_rng(rng_seed)
    n_seeds = len(seeds)
    picks = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=resamples)  # times each seed is drawn
    slots = np.arange(n_seeds)
    total = np.zeros(resamples)
    for s, strata in enumerate(seeds):
        draws = sum(resample_means(q, (resamples, n_seeds), rng) for q in strata) / len(strata)
        total += np.where(slots < picks[:, [s]], draws, 0.0).sum(axis=1)
    flat = [x for strata in seeds for q in strata for x in q]
    replicates = np.clip(total / n_seeds, min(flat), max(flat))  # float round-off must not leave the data's range
    low, high = np.quantile(replicates, [0.025, 0.975])
    estimate = statistics.fmean(statistics.fmean(statistics.fmean(q) for q in strata) for strata in seeds)
    return estimate, float(low), float(high)


def curve_band(curves: Sequence[dict[int, float]]) -> tuple[list[int], list[float], list[float]]:
    """Per step, the mean and std over the curves that reached it (seeds may stop at different steps); the std
    is 0 where only one curve has the step."""
    steps = sorted({s for c in curves for s in c})
    means, stds = [], []
    for step in steps:
        values = [c[step] for c in curves if step in c]
        means.append(statistics.fmean(values))
        stds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
    return steps, means, stds
