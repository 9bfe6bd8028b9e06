"""skillexp.rl.algorithms on small tensors; the expected numbers are worked out by hand in the comments."""
from __future__ import annotations

import math

import pytest
import torch

from skillexp.rl.algorithms import (agg_denominator, aggregate, group_advantages, kl_estimate, policy_loss,
                                    zero_std_groups)

NAN = float("nan")


def close(a: torch.Tensor, b: list | float, tol: float = 1e-5) -> None:
    torch.testing.assert_close(a.detach(), torch.tensor(b, dtype=a.dtype), atol=tol, rtol=0)


def grad_of(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(loss, x)[0]


# --- advantages -------------------------------------------------------------------------------------------------

def test_group_scale_divides_by_the_unbiased_group_std() -> None:
    # [1, 0, 0, 1]: mean .5, unbiased var (4 x .25) / 3 -> std .57735; .5 / .57735 = .86603. [0, 0, 0, 0]: all 0
    r = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0])
    close(group_advantages(r, 4, "group", eps=0.0), [0.86603, -0.86603, -0.86603, 0.86603, 0, 0, 0, 0])
    close(group_advantages(r, 4), [0.86603, -0.86603, -0.86603, 0.86603, 0, 0, 0, 0])  # eps 1e-6 is invisible
    # [3, 1, 2]: mean 2, unbiased var (1 + 1 + 0) / 2 = 1; eps = 1 halves it: 1 / (1 + 1)
    close(group_advantages(torch.tensor([3.0, 1, 2]), 3, "group", eps=0.0), [1.0, -1.0, 0.0])
    close(group_advantages(torch.tensor([3.0, 1, 2]), 3, "group", eps=1.0), [0.5, -0.5, 0.0])


def test_scale_none_only_centres() -> None:  # Dr.GRPO
    close(group_advantages(torch.tensor([1.0, 0, 0, 1, 5, 5]), 2, "none"), [0.5, -0.5, -0.5, 0.5, 0, 0])
    close(group_advantages(torch.tensor([3.0, 1, 2]), 3, "none"), [1.0, -1.0, 0.0])


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_nan_rewards_get_zero_and_stay_out_of_the_statistics(scale: str) -> None:
    # [1, nan, 0, 2]: scored 1, 0, 2 -> mean 1, unbiased std 1 (of the group and of this one-group batch)
    # -> [0, 0, -1, 1] under every scale
    close(group_advantages(torch.tensor([1.0, NAN, 0, 2]), 4, scale, eps=0.0), [0.0, 0.0, -1.0, 1.0])
    # one scored reward has no baseline (its nanmean is itself); no scored reward at all: zeros, never NaN
    close(group_advantages(torch.tensor([NAN, 5.0, NAN, NAN, NAN, NAN]), 3, scale, eps=0.0), [0.0] * 6)


def test_nan_reward_with_std_scaling() -> None:
    # [1, nan, 0]: mean .5, unbiased std sqrt(.5) = .70711 -> .5 / .70711 = .70711
    close(group_advantages(torch.tensor([1.0, NAN, 0.0]), 3, "group", eps=0.0), [0.70711, 0.0, -0.70711])


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_groups_of_one_keep_the_raw_reward(scale: str) -> None:  # verl: mean 0, std 1
    close(group_advantages(torch.tensor([0.3, 2.0, -1.0, NAN]), 1, scale, eps=0.0), [0.3, 2.0, -1.0, 0.0])


def test_batch_scale_centres_per_group_and_divides_by_the_batch_std() -> None:  # TRL's scale_rewards="batch"
    # [1, 0, 0, 1 | 1, 1, 1, 1]: group means .5 and 1 -> centred [.5, -.5, -.5, .5 | 0 x 4]; the batch's 6 ones and
    # 2 zeros: mean .75, unbiased var (6 x .0625 + 2 x .5625) / 7 = 1.5 / 7 -> std .46291; .5 / .46291 = 1.08012
    r = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 1])
    close(group_advantages(r, 4, "batch", eps=0.0), [1.08012, -1.08012, -1.08012, 1.08012, 0, 0, 0, 0])
    # [3, 1, 2 | 5, 5, 5]: centred [1, -1, 0 | 0 x 3]; batch mean 21 / 6 = 3.5, squared deviations .25 + 6.25 +
    # 2.25 + 3 x 2.25 = 15.5, / 5 = 3.1 -> std 1.76068: 1 / 1.76068 = .56796; eps 1: 1 / 2.76068 = .36223
    r = torch.tensor([3.0, 1, 2, 5, 5, 5])
    close(group_advantages(r, 3, "batch", eps=0.0), [0.56796, -0.56796, 0, 0, 0, 0])
    close(group_advantages(r, 3, "batch", eps=1.0), [0.36223, -0.36223, 0, 0, 0, 0])
    # NaN stays out of the batch std too: [1, nan, 0, 2 | 3 x 4] scores 1, 0, 2, 3, 3, 3, 3: mean 15 / 7, squared
    # deviations 1.30612 + 4.59184 + .02041 + 4 x .73469 = 8.85714, / 6 -> std 1.21499; centred [0, 0, -1, 1]
    r = torch.tensor([1.0, NAN, 0, 2, 3, 3, 3, 3])
    close(group_advantages(r, 4, "batch", eps=0.0), [0, 0, -0.82305, 0.82305, 0, 0, 0, 0])
    # every group flat: the batch std is 0 too, and everything is 0 (not 0 / 0) even with eps 0
    assert group_advantages(torch.tensor([1.0, 1, 0.3, 0.3]), 2, "batch", eps=0.0).tolist() == [0.0] * 4


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("eps", [1e-6, 0.0])
def test_equal_non_binary_rewards_give_exactly_zero(scale: str, eps: float) -> None:
    # float32 16 x .3 / 16 is not .3: before, a flat [.3] x 16 group got advantages of 3% (eps 1e-6) or ~1 (eps 0)
    point_one_plus_point_two = float(torch.tensor(0.1) + torch.tensor(0.2))  # a sum of weighted terms, in float32
    for size in (3, 4, 5, 7, 16):
        flat = [0.1, 0.3, 1 / 3, 0.7, 0.1 + 0.2, point_one_plus_point_two, 0.7 * 1 + 0.3 * 0.5, -0.3]
        groups = [[v] * size for v in flat]
        groups.append([0.1 + 0.2, 0.3] * (size // 2) + [0.3] * (size % 2))  # float64 .30000000000000004 and .3
        groups.append([NAN] + [0.3] * (size - 1))  # flat among its scored rewards
        rewards = torch.tensor([v for g in groups for v in g])
        assert zero_std_groups(rewards, size).all()
        adv = group_advantages(rewards, size, scale, eps=eps)  # type: ignore[arg-type]
        assert (adv == 0).all(), (size, adv.view(-1, size))
    # flat groups next to unequal ones: the unequal ones keep their values ([.1, .3, .3, .1]: mean .2, unbiased std
    # sqrt(4 x .01 / 3) = .11547 -> .1 / .11547 = .86603), the flat ones exact 0
    r = torch.tensor([0.1, 0.3, 0.3, 0.1, 0.3, 0.3, 0.3, 0.3, 0.7, 0.7, 0.7, 0.7])
    adv = group_advantages(r, 4, scale, eps=eps)  # type: ignore[arg-type]
    assert (adv[4:] == 0).all()
    if scale == "group":
        close(adv[:4], [-0.86603, 0.86603, 0.86603, -0.86603], tol=1e-4)  # eps 1e-6 moves the 5th digit
    if scale == "none":
        close(adv[:4], [-0.1, 0.1, 0.1, -0.1])


def test_unequal_groups_match_the_float32_formula() -> None:
    torch.manual_seed(3)
    r = torch.rand(64) * torch.tensor([0.1, 0.3, 1.0, 7.0]).repeat(16)  # 8 groups of 8, all unequal
    g = r.view(-1, 8)
    centred = g - g.mean(-1, keepdim=True)
    torch.testing.assert_close(group_advantages(r, 8, "none"), centred.view(-1))
    torch.testing.assert_close(group_advantages(r, 8, "group"), (centred / (g.std(-1, keepdim=True) + 1e-6)).view(-1))
    torch.testing.assert_close(group_advantages(r, 8, "batch"), (centred / (r.std() + 1e-6)).view(-1))


def test_advantage_errors() -> None:
    with pytest.raises(ValueError, match="6 rewards do not split into groups of 4"):
        group_advantages(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="unknown advantage scale 'global': use one of group, batch, none"):
        group_advantages(torch.zeros(4), 2, "global")  # type: ignore[arg-type]


def test_zero_std_groups() -> None:
    assert zero_std_groups(torch.tensor([1.0, 1, 0, 1, 0.5, 0.5]), 2).tolist() == [True, False, True]
    # NaNs are ignored: [1, nan, 1] is flat, an all-NaN group has no signal, [0, nan, 1] is not flat
    r = torch.tensor([1.0, NAN, 1, NAN, NAN, NAN, 0, NAN, 1])
    assert zero_std_groups(r, 3).tolist() == [True, True, False]
    assert zero_std_groups(torch.tensor([0.0, 1.0]), 1).tolist() == [True, True]
    with pytest.raises(ValueError, match="groups of 2"):
        zero_std_groups(torch.zeros(3), 2)


# --- KL --------------------------------------------------------------------------------------------------------

def test_kl_estimators_on_two_tokens() -> None:
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])  # logp - ref = [.5, -1]
    close(kl_estimate(logp, ref, "k1"), [0.5, -1.0])
    close(kl_estimate(logp, ref, "k2"), [0.125, 0.5])  # .5 x .25, .5 x 1
    # e^(ref - logp) - (ref - logp) - 1: e^-.5 + .5 - 1 = .10653; e^1 - 1 - 1 = .71828
    close(kl_estimate(logp, ref, "k3"), [0.10653, 0.71828])
    torch.manual_seed(2)
    assert (kl_estimate(torch.randn(1000), torch.randn(1000), "k3") >= 0).all()
    close(kl_estimate(torch.tensor([0.0]), torch.tensor([30.0]), "k3"), [10.0])  # e^30 - 31, clamped
    with pytest.raises(ValueError, match="unknown KL estimator .*: use one of k1, k2, k3"):
        kl_estimate(logp, ref, "k4")  # type: ignore[arg-type]


# --- aggregation ------------------------------------------------------------------------------------------------

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, NAN, 0.0], [9.0, 9.0, 9.0]])  # the NaN is masked out
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # the last row has no tokens


def test_aggregation_modes() -> None:
    close(aggregate(VALUES, MASK, "token_mean"), 2.5)  # (1 + 2 + 3 + 4) / 4
    close(aggregate(VALUES, MASK.bool(), "token_mean"), 2.5)
    close(aggregate(VALUES, MASK, "seq_mean_token_mean"), 3.0)  # mean(6 / 3, 4 / 1); the empty row is skipped
    close(aggregate(VALUES, MASK, "seq_mean_token_sum_norm", norm_constant=5), 0.66667)  # 10 / (3 rows x 5)


def test_agg_denominator_is_the_local_normaliser() -> None:
    assert agg_denominator(MASK, "token_mean") == 4.0  # tokens
    assert agg_denominator(MASK.bool(), "seq_mean_token_mean") == 2.0  # rows with a token
    assert agg_denominator(MASK, "seq_mean_token_sum_norm", norm_constant=5) == 15.0  # 3 rows x 5
    assert agg_denominator(torch.zeros(2, 3), "seq_mean_token_mean") == 0.0
    for mode in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"):  # the same division as aggregate
        d = agg_denominator(MASK, mode, norm_constant=5)  # type: ignore[arg-type]
        close(aggregate(VALUES, MASK, mode, norm_constant=5, denominator=d),  # type: ignore[arg-type]
              float(aggregate(VALUES, MASK, mode, norm_constant=5)))  # type: ignore[arg-type]


def test_denominator_splits_an_aggregate_over_micro_batches() -> None:
    close(aggregate(VALUES, MASK, "token_mean", denominator=8), 1.25)  # 10 / 8
    close(aggregate(VALUES, MASK, "token_mean", denominator=0.5), 20.0)  # not clamped to 1 (e.g. divided by gas)
    # micro-batches [row 0] and [rows 1, 2] with the update's 4 tokens: 6 / 4 + 4 / 4 = the full 2.5
    parts = [aggregate(VALUES[s], MASK[s], "token_mean", denominator=4) for s in (slice(0, 1), slice(1, 3))]
    close(parts[0], 1.5)
    close(parts[1], 1.0)
    # without it each divides by its own count: 6 / 3 + 4 / 1 = 6, not a mean of anything
    close(sum(aggregate(VALUES[s], MASK[s], "token_mean") for s in (slice(0, 1), slice(1, 3))), 6.0)
    # seq_mean_token_mean over 2 non-empty rows: 2 / 2 + 4 / 2 = the full 3; sum_norm: 6 / 15 + 4 / 15 = 10 / 15
    close(aggregate(VALUES[:1], MASK[:1], "seq_mean_token_mean", denominator=2), 1.0)
    close(aggregate(VALUES[1:], MASK[1:], "seq_mean_token_mean", denominator=2), 2.0)
    close(aggregate(VALUES[1:], MASK[1:], "seq_mean_token_sum_norm", denominator=15), 0.26667)  # no norm_constant
    close(aggregate(VALUES, torch.zeros_like(MASK), "seq_mean_token_mean", denominator=0), 0.0)  # nothing counts
    with pytest.raises(ValueError, match="denominator must be >= 0"):
        aggregate(VALUES, MASK, "token_mean", denominator=-1)


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
@pytest.mark.parametrize("seed", range(5))
def test_parts_with_the_summed_denominator_add_up_to_the_whole(mode: str, seed: int) -> None:
    """Any split of a batch into micro-batches (or ranks), each padded to its own width with masked garbage: the
    parts' aggregates over the summed agg_denominator add up to the whole batch's aggregate, gradient included."""
    gen = torch.Generator().manual_seed(seed)
    rows, width = 11, 6
    values = torch.randn(rows, width, generator=gen, requires_grad=True)
    mask = torch.rand(rows, width, generator=gen) < 0.6  # tokens anywhere, gaps included
    mask[torch.randint(0, rows, (3,), generator=gen)] = False  # some rows without tokens
    whole = aggregate(values, mask, mode, norm_constant=7)  # type: ignore[arg-type]
    cuts = sorted(torch.randint(0, rows + 1, (3,), generator=gen).tolist())  # parts may be empty
    bounds = list(zip([0, *cuts], [*cuts, rows]))

    def padded(s: int, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        extra = int(torch.randint(0, 3, (1,), generator=gen))
        v = torch.cat([values[s:e], torch.full((e - s, extra), NAN)], 1)
        return v, torch.cat([mask[s:e], torch.zeros(e - s, extra, dtype=torch.bool)], 1)

    parts = [padded(s, e) for s, e in bounds]
    denominator = sum(agg_denominator(m, mode, norm_constant=7) for _, m in parts)  # type: ignore[arg-type]
    total = sum(aggregate(v, m, mode, norm_constant=7, denominator=denominator)  # type: ignore[arg-type]
                for v, m in parts)
    torch.testing.assert_close(total, whole)
    torch.testing.assert_close(grad_of(total, values), grad_of(whole, values))


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_fully_masked_rows_give_zero_not_nan(mode: str) -> None:
    values = VALUES.clone().requires_grad_(True)
    out = aggregate(values, torch.zeros_like(MASK), mode, norm_constant=3)
    close(out, 0.0)
    close(grad_of(out, values), [[0.0] * 3] * 3)


def test_aggregation_errors() -> None:
    with pytest.raises(ValueError, match="norm_constant"):
        aggregate(VALUES, MASK, "seq_mean_token_sum_norm")
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate(VALUES, MASK, "seq_sum")  # type: ignore[arg-type]


# --- policy loss ------------------------------------------------------------------------------------------------

def test_on_policy_loss_is_minus_mean_advantage_and_gradient_minus_a_over_tokens() -> None:
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.7]], requires_grad=True)
    loss, stats = policy_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 2), 0.2, 0.2,
                              "token_mean")
    close(loss, 0.0)  # -(1 + 1 - 1 - 1) / 4: "loss about 0" is normal with centred advantages...
    close(grad_of(loss, logp), [[-0.25, -0.25], [0.25, 0.25]])  # ...the gradient -A / 4 tokens is not
    close(stats["ratio_mean"], 1.0)
    close(stats["clip_frac_low"], 0.0)
    close(stats["clip_frac_high"], 0.0)
    assert "kl" not in stats
    # A = [2, 1], 3 tokens: loss -(2 + 2 + 1) / 3, gradient -A / 3, 0 on the masked token
    loss, stats = policy_loss(logp, logp.detach(), torch.tensor([2.0, 1.0]), torch.tensor([[1, 1], [1, 0]]),
                              0.2, 0.2, "token_mean")
    close(loss, -1.66667)
    close(stats["pg_loss"], -1.66667)
    close(grad_of(loss, logp), [[-0.66667, -0.66667], [-0.33333, 0.0]])


def test_other_aggregations_of_the_policy_loss() -> None:
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 0, 0], [1, 1, 1]])
    adv = torch.tensor([1.0, 3.0])  # per-token losses -1 and -3, -3, -3
    close(policy_loss(logp, logp, adv, mask, 0.2, 0.2, "token_mean")[0], -2.5)  # -10 / 4
    close(policy_loss(logp, logp, adv, mask, 0.2, 0.2, "seq_mean_token_mean")[0], -2.0)  # mean(-1, -3)
    close(policy_loss(logp, logp, adv, mask, 0.2, 0.2, "seq_mean_token_sum_norm", norm_constant=5)[0], -1.0)  # -10/10


# ratios e^.5 = 1.648721, e^-.5 = .606531, e^.05 = 1.051271, e^.1 = 1.105171 (old log-probs 0)
CLIP_LOGP = [[0.5, -0.5, 0.05, 0.1]]


def test_ratio_above_one_plus_clip_high_with_positive_advantage_is_clipped() -> None:
    logp = torch.tensor(CLIP_LOGP, requires_grad=True)
    loss, stats = policy_loss(logp, torch.zeros(1, 4), torch.tensor([1.0]), torch.ones(1, 4), 0.2, 0.2, "token_mean")
    # -min(r, clip(r, .8, 1.2)) per token: -1.2 (clipped), -.606531 (min keeps r < .8), -1.051271, -1.105171
    close(loss, -0.990743)  # -3.962973 / 4
    close(grad_of(loss, logp), [[0.0, -0.151633, -0.262818, -0.276293]])  # -r / 4, 0 where clipped
    close(stats["clip_frac_high"], 0.25)
    close(stats["clip_frac_low"], 0.0)
    close(stats["ratio_mean"], 1.102924)  # 4.411694 / 4


def test_ratio_below_one_minus_clip_low_with_negative_advantage_is_clipped() -> None:
    logp = torch.tensor(CLIP_LOGP, requires_grad=True)
    loss, stats = policy_loss(logp, torch.zeros(1, 4), torch.tensor([-1.0]), torch.ones(1, 4), 0.2, 0.2, "token_mean")
    # max(r, clip(r, .8, 1.2)) per token: 1.648721 (not clipped: pessimistic), .8 (clipped), 1.051271, 1.105171
    close(loss, 1.151291)  # 4.605163 / 4
    close(grad_of(loss, logp), [[0.412180, 0.0, 0.262818, 0.276293]])  # r / 4, 0 where clipped
    close(stats["clip_frac_low"], 0.25)
    close(stats["clip_frac_high"], 0.0)


def test_asymmetric_clip_higher() -> None:  # DAPO: clip_low .2, clip_high .28
    logp = torch.tensor([[math.log(1.25)], [math.log(0.75)]])  # ratios 1.25 (A = 1) and .75 (A = -1)
    adv, mask = torch.tensor([1.0, -1.0]), torch.ones(2, 1)
    loss, stats = policy_loss(logp, torch.zeros(2, 1), adv, mask, 0.2, 0.2, "token_mean")
    close(loss, -0.2)  # (-1.2 + .8) / 2: both clipped
    close(stats["clip_frac_high"], 0.5)
    close(stats["clip_frac_low"], 0.5)
    loss, stats = policy_loss(logp, torch.zeros(2, 1), adv, mask, 0.2, 0.28, "token_mean")
    close(loss, -0.225)  # (-1.25 + .8) / 2: 1.25 < 1.28 is free to grow, the low side still clips at .8
    close(stats["clip_frac_high"], 0.0)
    close(stats["clip_frac_low"], 0.5)


# ratios [4, 2, .5] (A = -2) and [4, 1, .9] (A = 1), old log-probs 0
DUAL_LOGP = [[math.log(4), math.log(2), math.log(0.5)], [math.log(4), 0.0, math.log(0.9)]]


def test_dual_clip_caps_the_loss_of_negative_advantages() -> None:  # verl's clip_ratio_c
    logp = torch.tensor(DUAL_LOGP, requires_grad=True)
    adv, mask = torch.tensor([-2.0, 1.0]), torch.ones(2, 3)
    # A = -2: max(r, clip(r, .8, 1.2)) x 2 = 8, 4, 1.6 (clipped low); A = 1: -1.2 (clipped high), -1, -.9
    loss, stats = policy_loss(logp, torch.zeros(2, 3), adv, mask, 0.2, 0.2, "token_mean")
    close(loss, 1.75)  # 10.5 / 6
    close(grad_of(loss, logp), [[1.33333, 0.66667, 0.0], [0.0, -0.16667, -0.15]])  # -A r / 6, 0 where clipped
    assert "clip_frac_dual" not in stats
    # clip_ratio_c 3: the A < 0 token with ratio 4 loses 3 x 2 = 6 instead of 8, with no gradient; ratio 2 < 3 is
    # below the cap; positive advantages are untouched
    loss, stats = policy_loss(logp, torch.zeros(2, 3), adv, mask, 0.2, 0.2, "token_mean", clip_ratio_c=3.0)
    close(loss, 1.41667)  # (6 + 4 + 1.6 - 1.2 - 1 - .9) / 6 = 8.5 / 6
    close(grad_of(loss, logp), [[0.0, 0.66667, 0.0], [0.0, -0.16667, -0.15]])
    close(stats["clip_frac_dual"], 0.16667)  # 1 of 6 tokens
    close(stats["clip_frac_low"], 0.16667)  # ratio .5, A < 0
    close(stats["clip_frac_high"], 0.16667)  # ratio 4, A > 0: never dual-clipped
    close(stats["pg_loss"], 1.41667)
    # a cap above every ratio changes nothing; masked tokens count neither in the loss nor in clip_frac_dual
    loss, stats = policy_loss(logp, torch.zeros(2, 3), adv, mask, 0.2, 0.2, "token_mean", clip_ratio_c=10.0)
    close(loss, 1.75)
    close(stats["clip_frac_dual"], 0.0)
    masked = torch.tensor([[0.0, 1, 1], [1, 1, 1]])
    loss, stats = policy_loss(logp, torch.zeros(2, 3), adv, masked, 0.2, 0.2, "token_mean", clip_ratio_c=3.0)
    close(loss, 0.5)  # (4 + 1.6 - 1.2 - 1 - .9) / 5
    close(stats["clip_frac_dual"], 0.0)


def test_dual_clip_must_exceed_one() -> None:
    logp = torch.zeros(1, 2)
    for bad in (1.0, 0.5):
        with pytest.raises(ValueError, match="clip_ratio_c"):
            policy_loss(logp, logp, torch.tensor([1.0]), torch.ones(1, 2), 0.2, 0.2, "token_mean", clip_ratio_c=bad)


def test_denominator_reaches_the_policy_and_the_kl_terms() -> None:
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]])  # k1 = logp - ref = [.5, -1]
    args = (logp, logp.detach(), torch.tensor([2.0]), torch.ones(1, 2), 0.2, 0.2)
    # token_mean over an update of 8 tokens: pg -(2 + 2) / 8, KL .1 x (.5 - 1) / 8
    loss, stats = policy_loss(*args, "token_mean", denominator=8, ref_logp=ref, kl_coef=0.1, kl_kind="k1")
    close(stats["pg_loss"], -0.5)
    close(loss, -0.50625)
    close(grad_of(loss, logp), [[-0.2375, -0.2375]])  # (-2 + .1) / 8
    close(stats["kl"], -0.25)  # stats stay this micro-batch's own token means
    # seq_mean_token_mean over an update of 4 sequences: this one's token mean -2 / 4
    loss, _ = policy_loss(*args, "seq_mean_token_mean", denominator=4)
    close(loss, -0.5)


def test_kl_penalty_is_added_per_token() -> None:
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]])
    args = (logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 2), 0.2, 0.2, "token_mean")
    loss, stats = policy_loss(*args, ref_logp=ref, kl_coef=0.1)  # k3 by default: [.10653, .71828]
    close(stats["kl"], 0.41241)
    close(stats["pg_loss"], 0.0)
    close(loss, 0.041241)  # .1 x .41241
    # d/dlogp of .1 x mean(k3) = .05 x (1 - e^(ref - logp)) = .05 x [.39347, -1.71828]
    close(grad_of(loss, logp), [[0.019673, -0.085914]])
    loss, stats = policy_loss(*args, ref_logp=ref, kl_coef=0.1, kl_kind="k1")
    close(stats["kl"], -0.25)  # mean(.5, -1)
    close(loss, -0.025)
    close(grad_of(loss, logp), [[0.05, 0.05]])
    loss, stats = policy_loss(*args, ref_logp=ref, kl_coef=0.0)  # measured, not penalised
    close(loss, 0.0)
    close(stats["kl"], 0.41241)
