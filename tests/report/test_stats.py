"""Statistics over seeds against hand-computed values, and the t table against the t distribution itself."""
from __future__ import annotations

import math

import pytest

from skillexp.report.stats import T95, curve_band, summarize, t_quantile_95


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


def test_summarize_two_seeds_and_equal_values() -> None:
    s = summarize([0.5, 0.7])
    assert s.std == pytest.approx(math.sqrt(0.02))
    assert s.ci_half == pytest.approx(12.7062 * math.sqrt(0.02) / math.sqrt(2))
    same = summarize([0.3, 0.3, 0.3, 0.3])
    assert (same.std, same.ci_low, same.ci_high) == (0.0, pytest.approx(0.3), pytest.approx(0.3))


def test_summarize_one_and_no_seed() -> None:
    one = summarize([0.25])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_half) == (1, 0.25, None, None, None)
    assert summarize([]) is None


def test_curve_band_seeds_of_different_length() -> None:
    steps, mean, std = curve_band([{1: 0.1, 2: 0.2, 3: 0.3}, {1: 0.3, 2: 0.4}])
    assert steps == [1, 2, 3]
    assert mean == pytest.approx([0.2, 0.3, 0.3])
    assert std == pytest.approx([math.sqrt(0.02), math.sqrt(0.02), 0.0])
