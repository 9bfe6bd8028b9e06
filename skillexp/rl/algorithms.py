"""GRPO's math as small pure functions on tensors: advantages, log-probs, KL estimators, loss aggregation, the
clipped policy loss. Each option is tested on hand-computed values (tests/rl/test_algorithms.py).

Shapes: B sequences, T completion positions, V vocabulary; `mask` [B, T] (bool or {0, 1}) marks the completion
tokens that count.
"""
from __future__ import annotations

from typing import Any, Literal, get_args

import torch

# each option's names, here alone: rl/config.py's fields take these types, and the checks below read them
Aggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]
KLKind = Literal["k1", "k2", "k3"]
AdvantageScale = Literal["group", "batch", "none"]


def check_option(value: str, options: Any, what: str) -> None:
    """Refuse a `value` that is not one of the `Literal` type `options`, naming those that are."""
    names = get_args(options)
    if value not in names:
        raise ValueError(f"unknown {what} {value!r}: use one of {', '.join(names)}.")


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if group_size < 1 or rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}: each prompt needs "
                         "exactly group_size completions, laid out consecutively.")
    return rewards.view(-1, group_size)


def _flat(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[num_groups] bool: max == min over each group's scored entries, or no scored entry at all."""
    hi = torch.where(valid, r, torch.full_like(r, -torch.inf)).amax(-1)
    lo = torch.where(valid, r, torch.full_like(r, torch.inf)).amin(-1)
    return (hi == lo) | ~valid.any(-1)


def _std(centred: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Unbiased (Bessel) std from deviations that are 0 where nothing was scored; 0 for fewer than 2 values."""
    return ((centred ** 2).sum(-1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()


def group_advantages(rewards: torch.Tensor, group_size: int, scale: AdvantageScale = "group",
                     eps: float = 1e-6) -> torch.Tensor:
    """r - group mean, divided by the group's std + eps (scale="group", GRPO), by the std of the whole batch's
    rewards + eps (scale="batch", TRL's scale_rewards="batch": centred per group, one scale for all), or by
    nothing (scale="none", Dr.GRPO). Float32 [B] out.

    Stds are unbiased (Bessel), as in verl and TRL. With group_size 1 there is nothing to compare with: verl's
    convention (mean 0, std 1) makes the advantage the raw reward, whatever the scale. NaN rewards ("could not
    score") get advantage 0 and stay out of every mean and std (TRL's nanmean / nanstd), so a group with one scored
    reward has advantage 0: no baseline, no signal.

    A group whose scored rewards are all equal (`zero_std_groups`) gets exactly 0, for any reward values and any
    eps: in float32, 16 x 0.3 / 16 is not 0.3, and the ~1e-8 residue over a ~1e-8 std + eps would otherwise be a
    visible advantage (3% at eps 1e-6, ~1 at eps 0) pushing on a group that has nothing to teach. The statistics
    are computed in float64 besides, which keeps residues in the other groups' centring small too."""
    check_option(scale, AdvantageScale, "advantage scale")
    r32 = _groups(rewards.float(), group_size)  # float32 first: the values zero_std_groups compares
    valid = ~torch.isnan(r32)
    if group_size == 1:
        return torch.where(valid, r32, torch.zeros_like(r32)).view(-1)
    r = torch.where(valid, r32, torch.zeros_like(r32)).double()
    n = valid.sum(-1, keepdim=True)
    mean = r.sum(-1, keepdim=True) / n.clamp(min=1)
    signal = valid & ~_flat(r32, valid)[:, None]
    adv = torch.where(signal, r - mean, torch.zeros_like(r))
    if scale == "none":
        return adv.float().view(-1)
    if scale == "group":
        std = _std(adv, n)
    else:  # one std over every scored reward of the batch, around the batch mean
        count = valid.sum()
        std = _std(torch.where(valid, r - r.sum() / count.clamp(min=1), torch.zeros_like(r)).view(-1), count)
    adv = torch.where(adv == 0, adv, adv / (std + eps))  # 0 stays exactly 0, also with eps = 0
    return adv.float().view(-1)


def zero_std_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[num_groups] bool: groups whose scored (non-NaN) rewards are all equal, so all their advantages are 0 and they
    carry no learning signal: a diagnostic (frac_reward_zero_std) and DAPO's filter. A group with no scored reward
    counts; with group_size 1 every group does. Compares float32 values, as `group_advantages` does."""
    r = _groups(rewards.float(), group_size)
    return _flat(r, ~torch.isnan(r))


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLKind) -> torch.Tensor:
    """Per-token estimators of KL(pi || ref) from tokens sampled from pi (Schulman's k1/k2/k3).

    k1 = logp - ref is unbiased but noisy and can be negative; k2 = (logp - ref)^2 / 2 is biased, low-variance;
    k3 = exp(ref - logp) - (ref - logp) - 1 is unbiased and >= 0 (verl's low_var_kl, TRL's only choice), clamped
    to [-10, 10] as verl does, since exp() explodes where the policy has left the reference far behind."""
    check_option(kind, KLKind, "KL estimator")
    delta = logp - ref_logp
    if kind == "k1":
        return delta
    if kind == "k2":
        return 0.5 * delta ** 2
    return (torch.exp(-delta) + delta - 1).clamp(-10, 10)


def _normaliser(keep: torch.Tensor, mode: Aggregation, norm_constant: float | None) -> torch.Tensor:
    check_option(mode, Aggregation, "loss aggregation")
    if mode == "token_mean":
        return keep.sum()
    if mode == "seq_mean_token_mean":
        return keep.any(-1).sum()
    if norm_constant is None or not norm_constant > 0:
        raise ValueError("loss aggregation seq_mean_token_sum_norm (Dr.GRPO) needs a positive norm_constant, "
                         "e.g. the maximum response length.")
    return torch.tensor(keep.shape[0] * float(norm_constant), device=keep.device)


def agg_denominator(mask: torch.Tensor, mode: Aggregation, norm_constant: float | None = None) -> float:
    """What `aggregate` divides by for this mask alone: its number of tokens (token_mean), of sequences with at
    least one token (seq_mean_token_mean), or rows x norm_constant (seq_mean_token_sum_norm).

    Summed over an update's micro-batches (and all-reduced over ranks), it is the `denominator` that makes their
    `aggregate`s add up to the aggregate of the whole update. A float: reading it waits for the device."""
    return float(_normaliser(mask.bool(), mode, norm_constant))


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: Aggregation, norm_constant: float | None = None,
              denominator: float | None = None) -> torch.Tensor:
    """Per-token values [B, T] to one scalar loss; masked positions never count, even if they hold NaN or inf.

    token_mean: sum / number of tokens (verl's token-mean, DAPO, TRL's default).
    seq_mean_token_mean: the sum of each sequence's token mean / number of sequences (the GRPO paper); rows without
      tokens are left out of both. Long answers get less weight per token.
    seq_mean_token_sum_norm: sum / (B x norm_constant), Dr.GRPO's fixed normaliser (e.g. the maximum response
      length) with no per-length division, which removes GRPO's length bias.

    `denominator` replaces the mode's own normaliser (`agg_denominator(mask, ...)`): when an update is split over
    micro-batches and ranks, each part divides by the whole update's normaliser (the sum of the parts'
    `agg_denominator`), so the parts add up to the update's exact aggregate instead of a mean of per-part means;
    norm_constant is then not needed. It is not clamped (a trainer that divides it by the accumulation steps may
    pass less than 1); 0 means nothing in the whole update counts, and gives 0."""
    check_option(mode, Aggregation, "loss aggregation")
    keep = mask.bool()
    masked = torch.where(keep, values, torch.zeros_like(values))
    if mode == "seq_mean_token_mean":
        total = (masked.sum(-1) / keep.sum(-1).clamp(min=1)).sum()  # empty rows add 0
    else:
        total = masked.sum()
    if denominator is None:
        local = _normaliser(keep, mode, norm_constant)
        return total / torch.where(local > 0, local, torch.ones_like(local))
    if not denominator >= 0:
        raise ValueError(f"an aggregation denominator must be >= 0, got {denominator}.")
    return total / (float(denominator) or 1.0)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip_low: float, clip_high: float, agg: Aggregation, norm_constant: float | None = None,
                denominator: float | None = None, ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
                kl_kind: KLKind = "k3", clip_ratio_c: float | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate with asymmetric clipping (DAPO's clip-higher: clip_high > clip_low lets unlikely
    tokens grow), optionally verl's dual clip, plus an optional per-token KL penalty kl_coef x KL(pi || ref).

    Per token: -min(ratio x A, clip(ratio, 1 - clip_low, 1 + clip_high) x A), ratio = exp(logp - old_logp) with the
    log-ratio clamped to ±20; A [B] is shared by a sequence's tokens. PPO's min does not bound the loss of a token
    with A < 0 whose ratio has grown large (it keeps ratio x |A|); the dual clip (`clip_ratio_c` > 1, verl's default
    3.0, None = off) caps it at clip_ratio_c x |A|, with no gradient where the cap binds, so a few stale tokens
    cannot dominate an off-policy update. With old_logp = logp.detach() (one update per batch) the value is
    -mean(A), about 0 for centred advantages, while the gradient is -A per token: the loss is not a progress signal.

    `agg`, `norm_constant` and `denominator` go to `aggregate`, for the policy term and the KL term alike. Stats
    are detached token means over `mask`; clip_frac_low/high count tokens whose clipped branch is active (no
    gradient), clip_frac_dual (only with clip_ratio_c) those where the dual clip's cap binds."""
    if clip_ratio_c is not None and not clip_ratio_c > 1:
        raise ValueError(f"clip_ratio_c (dual clip) must be > 1, or None for off; got {clip_ratio_c}.")
    keep = mask.bool()
    adv = advantages.to(logp.dtype)[:, None]
    ratio = torch.exp((logp - old_logp).clamp(-20, 20))
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = torch.max(-ratio * adv, -clipped * adv)
    if clip_ratio_c is not None:  # verl: where(A < 0, min(-A x c, clipped loss), clipped loss)
        cap = -adv * clip_ratio_c
        dual = (adv < 0) & (per_token > cap)
        per_token = torch.where(dual, cap, per_token)
    pg = aggregate(per_token, keep, agg, norm_constant, denominator)
    loss = pg

    def token_mean(x: torch.Tensor) -> torch.Tensor:
        return aggregate(x.detach().to(logp.dtype), keep, "token_mean")

    stats = {"pg_loss": pg.detach(),
             "clip_frac_low": token_mean((ratio < 1 - clip_low) & (adv < 0)),
             "clip_frac_high": token_mean((ratio > 1 + clip_high) & (adv > 0)),
             "ratio_mean": token_mean(ratio)}
    if clip_ratio_c is not None:
        stats["clip_frac_dual"] = token_mean(dual)
    if ref_logp is not None:
        kl = kl_estimate(logp, ref_logp, kl_kind)
        if kl_coef > 0:
            loss = loss + kl_coef * aggregate(kl, keep, agg, norm_constant, denominator)
        stats["kl"] = token_mean(kl)
    return loss, stats
