"""Evaluation metrics as pure functions over per-question score lists, tested on hand-computed values."""
from __future__ import annotations

from math import comb
from statistics import fmean
from typing import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): P(at least one of k draws without replacement from n is correct)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean_at_k(scores: Sequence[Sequence[float]]) -> float:
    """Accuracy averaged over the k samples of each question, then over questions (the papers' 'mean@k')."""
    return fmean(fmean(s) for s in scores)


def mean_pass_at_k(scores: Sequence[Sequence[float]], k: int, threshold: float = 1.0) -> float:
    """pass@k averaged over questions; a sample counts as correct when its score reaches `threshold`."""
    return fmean(pass_at_k(len(s), sum(x >= threshold for x in s), k) for s in scores)


def variant_metrics(
    scores: Sequence[Sequence[float]],
    lengths: Sequence[Sequence[int]],
    truncated: Sequence[Sequence[bool]],
    pass_k: Sequence[int],
    greedy_scores: Sequence[float] | None,
) -> dict[str, float]:
    """All metrics of one task variant, keyed without the variant prefix (e.g. 'mean@4')."""
    k = len(scores[0])
    out = {f"mean@{k}": mean_at_k(scores)}
    for p in pass_k:
        out[f"pass@{p}"] = mean_pass_at_k(scores, p)
    flat_len = [n for row in lengths for n in row]
    flat_trunc = [t for row in truncated for t in row]
    out["mean_tokens"] = fmean(flat_len)
    out["truncation_rate"] = fmean(float(t) for t in flat_trunc)
    if greedy_scores is not None:
        out["greedy"] = fmean(greedy_scores)
    out["num_items"] = float(len(scores))
    return out
