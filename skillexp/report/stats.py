"""Statistics over seeds, as pure functions: mean, sample std and a Student-t 95% confidence interval.

A sweep has a handful of seeds per method, so the interval must use the t distribution, not the normal one (with
3 seeds the half-width is 2.48 std instead of 1.13). SciPy is not a dependency, so the two-sided 95% quantiles
come from a table (exact to 4 decimals) and are interpolated in 1/df between its rows past df = 30.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

# two-sided 95% quantiles t_{0.975, df}
T95 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060, 9: 2.2622,
       10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314, 16: 2.1199, 17: 2.1098, 18: 2.1009,
       19: 2.0930, 20: 2.0860, 21: 2.0796, 22: 2.0739, 23: 2.0687, 24: 2.0639, 25: 2.0595, 26: 2.0555, 27: 2.0518,
       28: 2.0484, 29: 2.0452, 30: 2.0423, 40: 2.0211, 60: 2.0003, 120: 1.9799}
Z975 = 1.9600  # df = infinity


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
    """Summary of one cell: n values (one per seed); std and CI are None with a single seed."""

    n: int
    mean: float
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def ci_half(self) -> float | None:
        return None if self.ci_high is None else self.ci_high - self.mean


def summarize(values: Sequence[float]) -> Stats | None:
    """Mean, sample std (n - 1) and the 95% t interval mean ± t_{0.975, n-1} · std / √n; None for no values."""
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Stats(1, mean)
    std = statistics.stdev(values)
    half = t_quantile_95(len(values) - 1) * std / math.sqrt(len(values))
    return Stats(len(values), mean, std, mean - half, mean + half)


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
