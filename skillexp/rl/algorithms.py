"""GRPO's math as small pure functions on tensors: advantages, log-probs, KL estimators, loss aggregation, the
clipped policy loss. Each option is tested on hand-computed values (tests/rl/test_algorithms.py).

Shapes: B sequences, T completion positions, V vocabulary; `mask` [B, T] (bool or {0, 1}) marks the completion
tokens that count.
"""
from __future__ import annotations

from typing import Callable, Iterator, Literal

import torch

Aggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]
KLKind = Literal["k1", "k2", "k3"]


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if group_size < 1 or rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}: each prompt needs "
                         "exactly group_size completions, laid out consecutively.")
    return rewards.view(-1, group_size)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: Literal["group", "none"] = "group",
                     eps: float = 1e-6) -> torch.Tensor:
    """(r - group mean) / (group std + eps), or r - group mean with scale="none" (Dr.GRPO).

    The std is unbiased (Bessel), as in verl and TRL. With group_size 1 there is nothing to compare with: verl's
    convention (mean 0, std 1) makes the advantage the raw reward. NaN rewards ("could not score") get advantage 0
    and stay out of their group's mean and std (TRL's nanmean / nanstd), so a group with one scored reward has
    advantage 0: no baseline, no signal."""
    if scale not in ("group", "none"):
        raise ValueError(f"unknown advantage scale {scale!r}: use 'group' or 'none'.")
    r = _groups(rewards.float(), group_size)
    valid = ~torch.isnan(r)
    if group_size == 1:
        return torch.where(valid, r, torch.zeros_like(r)).view(-1)
    n = valid.sum(-1, keepdim=True)
    mean = torch.where(valid, r, torch.zeros_like(r)).sum(-1, keepdim=True) / n.clamp(min=1)
    adv = torch.where(valid, r - mean, torch.zeros_like(r))
    if scale == "group":  # equal rewards give 0 / (0 + eps): keep them exactly 0, also with eps = 0
        std = ((adv ** 2).sum(-1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()
        adv = torch.where(adv == 0, adv, adv / (std + eps))
    return adv.view(-1)


def zero_std_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[num_groups] bool: groups whose scored (non-NaN) rewards are all equal, so all their advantages are 0 and they
    carry no learning signal: a diagnostic (frac_reward_zero_std) and DAPO's filter. A group with no scored reward
    counts; with group_size 1 every group does."""
    r = _groups(rewards.float(), group_size)
    valid = ~torch.isnan(r)
    hi = torch.where(valid, r, torch.full_like(r, -torch.inf)).amax(-1)
    lo = torch.where(valid, r, torch.full_like(r, torch.inf)).amin(-1)
    return (hi == lo) | ~valid.any(-1)


def _pieces(batch: int, length: int, chunk: int) -> Iterator[tuple[slice, slice]]:
    """(sequence slice, position slice) blocks of at most `chunk` positions (one if `chunk` < length), in row-major
    order. Slicing keeps views of the logits: reshaping a non-contiguous [B, T, V] to [B*T, V] would copy it."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}.")
    if length <= chunk:
        step = chunk // max(length, 1)
        for i in range(0, batch, step):
            yield slice(i, i + step), slice(None)
    else:
        for b in range(batch):
            for t in range(0, length, chunk):
                yield slice(b, b + 1), slice(t, t + chunk)


def _chunked(logits: torch.Tensor, chunk: int, fn: Callable[[slice, slice], torch.Tensor]) -> torch.Tensor:
    batch, length = logits.shape[:2]
    parts = [fn(bs, ts).reshape(-1) for bs, ts in _pieces(batch, length, chunk)]
    if not parts:
        return logits.new_zeros(batch, length)
    return torch.cat(parts).view(batch, length)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """log softmax(logits)[target] per position, [B, T], differentiable.

    Computed as logit[target] - logsumexp(logits) on blocks of at most `chunk` positions, so no [B, T, V]
    log-softmax (a second copy of the largest tensor in the step) exists at once; backward also runs block by
    block. Works in the logits' dtype: pass float32 logits (the trainer does) for precise ratios."""
    def piece(bs: slice, ts: slice) -> torch.Tensor:
        part = logits[bs, ts]
        return part.gather(-1, targets[bs, ts, None]).squeeze(-1) - torch.logsumexp(part, -1)

    return _chunked(logits, chunk, piece)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Entropy of each position's distribution, float32 [B, T], in the same blocks as `token_logprobs`. A
    diagnostic: policy collapse shows as falling entropy."""
    def piece(bs: slice, ts: slice) -> torch.Tensor:
        logp = torch.log_softmax(logits[bs, ts].float(), -1)
        return -(logp.exp() * logp).sum(-1)

    return _chunked(logits, chunk, piece)


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLKind) -> torch.Tensor:
    """Per-token estimators of KL(pi || ref) from tokens sampled from pi (Schulman's k1/k2/k3).

    k1 = logp - ref is unbiased but noisy and can be negative; k2 = (logp - ref)^2 / 2 is biased, low-variance;
    k3 = exp(ref - logp) - (ref - logp) - 1 is unbiased and >= 0 (verl's low_var_kl, TRL's only choice), clamped
    to [-10, 10] as verl does, since exp() explodes where the policy has left the reference far behind."""
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
    """Per-token values [B, T] to one scalar loss; masked positions never count, even if they hold NaN or inf.

    token_mean: sum / number of tokens (verl's token-mean, DAPO, TRL's default). `num_tokens` replaces the local
      count: under gradient accumulation every micro-batch divides by the whole update's token count, so the
      micro-batch losses add up to the update's exact token mean instead of a mean of per-micro-batch means.
    seq_mean_token_mean: the mean over sequences of each one's token mean (the GRPO paper); rows without tokens
      are left out. Long answers get less weight per token.
    seq_mean_token_sum_norm: sum / (B x norm_constant), Dr.GRPO's fixed normaliser (e.g. the maximum response
      length) with no per-length division, which removes GRPO's length bias."""
    keep = mask.bool()
    masked = torch.where(keep, values, torch.zeros_like(values))
    if mode == "token_mean":
        count = keep.sum().clamp(min=1) if num_tokens is None else max(float(num_tokens), 1.0)
        return masked.sum() / count
    if mode == "seq_mean_token_mean":
        lengths = keep.sum(-1)
        per_seq = masked.sum(-1) / lengths.clamp(min=1)
        return per_seq.sum() / (lengths > 0).sum().clamp(min=1)  # empty rows add 0 to the sum
    if mode == "seq_mean_token_sum_norm":
        if norm_constant is None or norm_constant <= 0:
            raise ValueError("loss aggregation seq_mean_token_sum_norm (Dr.GRPO) needs a positive norm_constant, "
                             "e.g. the maximum response length.")
        return masked.sum() / (values.shape[0] * norm_constant)
    raise ValueError(f"unknown loss aggregation {mode!r}: use token_mean, seq_mean_token_mean or "
                     "seq_mean_token_sum_norm.")


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip_low: float, clip_high: float, agg: Aggregation, norm_constant: float | None = None,
                num_tokens: float | None = None, ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
                kl_kind: KLKind = "k3") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate with asymmetric clipping (DAPO's clip-higher: clip_high > clip_low lets unlikely
    tokens grow), plus an optional per-token KL penalty kl_coef x KL(pi || ref).

    Per token: -min(ratio x A, clip(ratio, 1 - clip_low, 1 + clip_high) x A), ratio = exp(logp - old_logp) with the
    log-ratio clamped to ±20; A [B] is shared by a sequence's tokens. With old_logp = logp.detach() (one update per
    batch) the value is -mean(A), about 0 for centred advantages, while the gradient is -A per token: the loss is
    not a progress signal. Stats are detached token means over `mask`; clip_frac_low/high count tokens whose
    clipped branch is active (no gradient)."""
    keep = mask.bool()
    adv = advantages.to(logp.dtype)[:, None]
    ratio = torch.exp((logp - old_logp).clamp(-20, 20))
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high)
    pg = aggregate(-torch.min(ratio * adv, clipped * adv), keep, agg, norm_constant, num_tokens)
    loss = pg

    def token_mean(x: torch.Tensor) -> torch.Tensor:
        return aggregate(x.detach().to(logp.dtype), keep, "token_mean")

    stats = {"pg_loss": pg.detach(),
             "clip_frac_low": token_mean((ratio < 1 - clip_low) & (adv < 0)),
             "clip_frac_high": token_mean((ratio > 1 + clip_high) & (adv > 0)),
             "ratio_mean": token_mean(ratio)}
    if ref_logp is not None:
        kl = kl_estimate(logp, ref_logp, kl_kind)
        if kl_coef > 0:
            loss = loss + kl_coef * aggregate(kl, keep, agg, norm_constant, num_tokens)
        stats["kl"] = token_mean(kl)
    return loss, stats
