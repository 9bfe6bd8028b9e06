"""Eval metrics against hand-computed values."""
from __future__ import annotations

import pytest

from skillexp.eval.metrics import mean_at_k, mean_pass_at_k, pass_at_k, variant_metrics


def test_pass_at_k_hand_values() -> None:
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # C(3,2)/C(4,2) = 3/6
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # C(3,3)/C(5,3) = 1/10
    assert pass_at_k(4, 3, 2) == 1.0  # n - c < k: every pair holds a correct sample
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_mean_at_k_and_pass() -> None:
    scores = [[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]
    assert mean_at_k(scores) == pytest.approx((0.25 + 1 + 0) / 3)
    assert mean_pass_at_k(scores, 1) == pytest.approx((0.25 + 1 + 0) / 3)
    assert mean_pass_at_k(scores, 4) == pytest.approx((1 + 1 + 0) / 3)


def test_variant_metrics_keys_and_values() -> None:
    m = variant_metrics(scores=[[1, 0], [0, 0]], lengths=[[10, 20], [30, 40]],
                        truncated=[[False, True], [False, False]], pass_k=[1, 2], greedy_scores=[1, 0])
    assert m == pytest.approx({"mean@2": 0.25, "pass@1": 0.25, "pass@2": 0.5, "mean_tokens": 25.0,
                               "truncation_rate": 0.25, "greedy": 0.5, "num_items": 2.0})
