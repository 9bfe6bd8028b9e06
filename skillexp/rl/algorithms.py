"""GRPO's math as small pure functions on tensors: advantages, log-probs, KL estimators, loss aggregation, the
clipped policy loss. Each option is tested on hand-computed values (tests/rl/test_algorithms.py).

Shapes: B sequences, T completion positions, V vocabulary; `mask` [B, T] is 1 on completion tokens that count.
"""
from __future__ import annotations

from typing import Literal

import torch

Aggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}: each prompt needs "
                         "exactly group_size completions, laid out consecutively.")
    return rewards.view(-1, group_size)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: Literal["group", "none"] = "group",
                     eps: float = 1e-6) -> torch.Tensor:
    """(r - group mean) / (group std + eps), or r - group mean with scale="none" (Dr.GRPO).

    The std is unbiased (Bessel), as in verl and TRL. A group of one has mean 0 and std 1 (verl), so its advantage
    is its reward. NaN rewards ("could not score") get advantage 0 and stay out of their group's statistics."""
    r = _groups(rewards.float(), group_size)
    valid = ~torch.isnan(r)
    n = valid.sum(-1, keepdim=True)
    filled = torch.where(valid, r, torch.zeros_like(r))
    mean = filled.sum(-1, keepdim=True) / n.clamp(min=1)
    var = (torch.where(valid, r - mean, torch.zeros_like(r)) ** 2).sum(-1, keepdim=True) / (n - 1).clamp(min=1)
    std = torch.where(n > 1, var.sqrt(), torch.ones_like(var))
    mean = torch.where(n > 1, mean, torch.zeros_like(mean))
    adv = r - mean
    if scale == "group":  # a group with equal rewards has 0 / 0 with eps = 0: its advantage is 0
        adv = torch.where(adv == 0, torch.zeros_like(adv), adv / (std + eps))
    return torch.where(valid, adv, torch.zeros_like(adv)).view(-1)


def zero_std_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[num_groups] bool: groups whose rewards are all equal, which carry no learning signal."""
    r = _groups(rewards, group_size)
    return (r == r[:, :1]).all(-1)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """log softmax(logits)[target] per position, [B, T], without a full [B, T, V] log-softmax in memory at once:
    logit[target] - logsumexp(logits), `chunk` rows at a time."""
    out = []
    for i in range(0, logits.shape[0], chunk):
        part = logits[i: i + chunk]
        picked = part.gather(-1, targets[i: i + chunk, :, None]).squeeze(-1)
        out.append(picked - torch.logsumexp(part, -1))
    return torch.cat(out)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Entropy of each position's distribution, [B, T] (a diagnostic: collapse shows as falling entropy)."""
    out = []
    for i in range(0, logits.shape[0], chunk):
        logp = torch.log_softmax(logits[i: i + chunk].float(), -1)
        out.append(-(logp.exp() * logp).sum(-1))
    return torch.cat(out)


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: Literal["k1", "k2", "k3"]) -> torch.Tensor:
    """Per-token estimators of KL(pi || ref) from samples of pi (Schulman's k1/k2/k3); k3 is non-negative and
    low-variance, clamped to [-10, 10] as verl does."""
    delta = logp - ref_logp
    if kind == "k1":
        return delta
    if kind == "k2":
        return 0.5 * delta ** 2
    if kind == "k3":
        return (torch.exp(-delta) + delta - 1).clamp(-10, 10)
    raise ValueError(f"unknown KL estimator {kind!r}: use k1, k2 or k3.")


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: Aggregation, norm_constant: float | None = None,
              num_tokens: float | None = None) -> torch.Tensor:
    """Per-token values to one loss.

    token_mean: sum / number of tokens (verl's token-mean, DAPO); `num_tokens` replaces the local count so that
    micro-batches of one update all divide by the update's total and add up to its exact token mean.
    seq_mean_token_mean: the mean over sequences of each one's token mean (the GRPO paper).
    seq_mean_token_sum_norm: sum / (B x norm_constant), Dr.GRPO's fixed normaliser with no per-length division."""
    mask = mask.to(values.dtype)
    total = (values * mask).sum()
    if mode == "token_mean":
        return total / (num_tokens if num_tokens is not None else mask.sum().clamp(min=1))
    if mode == "seq_mean_token_mean":
        lengths = mask.sum(-1)
        per_seq = (values * mask).sum(-1) / lengths.clamp(min=1)
        has = lengths > 0
        return per_seq[has].sum() / has.sum().clamp(min=1)
    if mode == "seq_mean_token_sum_norm":
        if norm_constant is None:
            raise ValueError("loss aggregation seq_mean_token_sum_norm (Dr.GRPO) needs norm_constant, e.g. the "
                             "maximum response length.")
        return total / (values.shape[0] * norm_constant)
    raise ValueError(f"unknown loss aggregation {mode!r}.")


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip_low: float, clip_high: float, agg: Aggregation, norm_constant: float | None = None,
                num_tokens: float | None = None, ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
                kl_kind: Literal["k1", "k2", "k3"] = "k3") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate with asymmetric clipping (DAPO's clip-higher), plus an optional KL penalty.

    Per token: -min(ratio x A, clip(ratio, 1 - clip_low, 1 + clip_high) x A), ratio = exp(logp - old_logp) with the
    log-ratio clamped to ±20. With old_logp = logp.detach() the value is -mean(A) (about 0 for centred advantages)
    while the gradient is -A per token: the loss is not a progress signal. Stats are token means over `mask`."""
    m = mask.to(logp.dtype)
    adv = advantages[:, None].to(logp.dtype)
    ratio = torch.exp((logp - old_logp).clamp(-20, 20))
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    pg = aggregate(per_token, m, agg, norm_constant, num_tokens)
    loss = pg
    n = m.sum().clamp(min=1)
    with torch.no_grad():
        stats = {"pg_loss": pg.detach(),
                 "clip_frac_low": (((ratio < 1 - clip_low) & (adv < 0)).to(m.dtype) * m).sum() / n,
                 "clip_frac_high": (((ratio > 1 + clip_high) & (adv > 0)).to(m.dtype) * m).sum() / n,
                 "ratio_mean": (ratio * m).sum() / n}
    if ref_logp is not None:
        kl = kl_estimate(logp, ref_logp, kl_kind)
        if kl_coef > 0:
            loss = loss + kl_coef * aggregate(kl, m, agg, norm_constant, num_tokens)
        stats["kl"] = ((kl.detach() * m).sum() / n)
    return loss, stats
