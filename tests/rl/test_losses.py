"""GRPO's advantage, KL, aggregation and loss options against values computed by hand (in the comments)."""
from __future__ import annotations

import math

import pytest
import torch

from skillexp.rl.algorithms import (aggregate, group_advantages, kl_estimate, policy_loss, token_entropy,
                                    token_logprobs, zero_std_groups)


def close(a: torch.Tensor, b: list[float] | float, tol: float = 1e-5) -> None:
    torch.testing.assert_close(a, torch.tensor(b, dtype=a.dtype), atol=tol, rtol=0)


def test_group_advantages_scale_by_the_unbiased_group_std() -> None:
    # group 1: [1, 0, 0, 1] mean .5, unbiased std sqrt(1/3) = .57735 -> ±.5/.57735 = ±.86603
    # group 2: [0, 0, 0, 0] -> all 0 (no signal)
    r = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0])
    close(group_advantages(r, 4, "group", eps=0.0), [0.86603, -0.86603, -0.86603, 0.86603, 0, 0, 0, 0])
    # Dr.GRPO: no std division -> ±.5
    close(group_advantages(r, 4, "none"), [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])
    # eps enters the denominator: .5 / (.57735 + 1) = .31699
    close(group_advantages(r[:4], 4, "group", eps=1.0), [0.31699, -0.31699, -0.31699, 0.31699])


def test_group_advantages_nan_rewards_and_groups_of_one() -> None:
    # [1, nan, 0]: the NaN is left out: mean .5, std sqrt(.5) = .70711 -> ±.70711; the NaN's advantage is 0
    close(group_advantages(torch.tensor([1.0, float("nan"), 0.0]), 3, "group", eps=0.0), [0.70711, 0.0, -0.70711])
    # a group of one: mean 0, std 1 -> the raw reward (verl's convention)
    close(group_advantages(torch.tensor([0.3, 2.0]), 1, "group", eps=0.0), [0.3, 2.0])
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.zeros(6), 4)


def test_zero_std_groups() -> None:
    assert zero_std_groups(torch.tensor([1.0, 1, 0, 1, 0.5, 0.5]), 2).tolist() == [True, False, True]


def test_token_logprobs_match_log_softmax_values_and_gradients() -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 11, requires_grad=True)
    targets = torch.randint(0, 11, (5, 3))
    ours = token_logprobs(logits, targets, chunk=2)  # chunks smaller than the batch
    ref = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(ours, ref)
    (g1,) = torch.autograd.grad(ours.sum(), logits)
    (g2,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g1, g2)
    # hand value: logits [0, ln 3] -> p = [.25, .75]; log p(1) = ln .75
    close(token_logprobs(torch.tensor([[[0.0, math.log(3)]]]), torch.tensor([[1]])), [[math.log(0.75)]])


def test_entropy_of_uniform_and_of_certain_distributions() -> None:
    close(token_entropy(torch.zeros(2, 1, 8)), [[math.log(8)], [math.log(8)]])
    close(token_entropy(torch.tensor([[[100.0, 0.0, 0.0]]])), [[0.0]])


def test_kl_estimators() -> None:
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -2.0])
    close(kl_estimate(logp, ref, "k1"), [0.5, 0.0])  # logp - ref
    close(kl_estimate(logp, ref, "k2"), [0.125, 0.0])  # .5 * .5^2
    close(kl_estimate(logp, ref, "k3"), [math.exp(-0.5) - 0.5, 0.0])  # e^(ref-logp) - (ref-logp) - 1 = .10653
    assert (kl_estimate(torch.randn(100), torch.randn(100), "k3") >= 0).all()
    close(kl_estimate(torch.tensor([0.0]), torch.tensor([30.0]), "k3"), [10.0])  # clamped
    with pytest.raises(ValueError, match="k1, k2 or k3"):
        kl_estimate(logp, ref, "k4")


VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # the last row has no tokens


def test_aggregation_modes() -> None:
    close(aggregate(VALUES, MASK, "token_mean"), 2.5)  # (1+2+3+4) / 4
    close(aggregate(VALUES, MASK, "token_mean", num_tokens=8), 1.25)  # the update's count, not the micro-batch's
    close(aggregate(VALUES, MASK, "seq_mean_token_mean"), 3.0)  # mean(2, 4); the empty row is skipped
    close(aggregate(VALUES, MASK, "seq_mean_token_sum_norm", norm_constant=5), 10 / 15)  # 10 / (3 rows x 5)
    with pytest.raises(ValueError, match="norm_constant"):
        aggregate(VALUES, MASK, "seq_mean_token_sum_norm")
    assert not torch.isnan(aggregate(VALUES, torch.zeros_like(MASK), "seq_mean_token_mean"))


def test_on_policy_loss_is_minus_mean_advantage_with_gradient_minus_a() -> None:
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.7]], requires_grad=True)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 2)
    loss, stats = policy_loss(logp, logp.detach(), adv, mask, 0.2, 0.2, "token_mean")
    close(loss.detach(), 0.0)  # -(1 + 1 - 1 - 1) / 4: "loss about 0" with centred advantages
    (grad,) = torch.autograd.grad(loss, logp)
    close(grad, [[-0.25, -0.25], [0.25, 0.25]])  # -A / 4 tokens: not zero
    close(stats["ratio_mean"], 1.0)
    close(stats["clip_frac_low"], 0.0)
    close(stats["clip_frac_high"], 0.0)


def test_clipping_stops_the_gradient_outside_the_trust_region() -> None:
    old = torch.zeros(1, 4)
    # ratios e^.5=1.65 (A>0: clipped at 1.2), e^-.5=.61 (A>0: not clipped), e^.05 (inside)...
    logp = torch.tensor([[0.5, -0.5, 0.05, 0.1]], requires_grad=True)
    loss, stats = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 4), 0.2, 0.2, "token_mean")
    (grad,) = torch.autograd.grad(loss, logp)
    r = [math.exp(-0.5), math.exp(0.05), math.exp(0.1)]
    close(grad, [[0.0, -r[0] / 4, -r[1] / 4, -r[2] / 4]])  # d(-ratio*A/4)/dlogp = -ratio/4, except the clipped
    close(loss.detach(), -(1.2 + sum(r)) / 4)
    close(stats["clip_frac_high"], 0.25)
    # A < 0: ratio .61 < .8 is clipped (gradient 0), ratio 1.65 is not (the pessimistic branch keeps it)
    loss, stats = policy_loss(logp, old, torch.tensor([-1.0]), torch.ones(1, 4), 0.2, 0.2, "token_mean")
    (grad,) = torch.autograd.grad(loss, logp)
    close(grad, [[math.exp(0.5) / 4, 0.0, r[1] / 4, r[2] / 4]])
    close(stats["clip_frac_low"], 0.25)


def test_clip_higher_is_asymmetric() -> None:
    old, logp = torch.zeros(1, 1), torch.tensor([[math.log(1.25)]], requires_grad=True)  # ratio 1.25
    loss, _ = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), 0.2, 0.2, "token_mean")
    close(loss.detach(), -1.2)  # clipped at 1 + .2
    loss, stats = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), 0.2, 0.28, "token_mean")
    close(loss.detach(), -1.25)  # DAPO's 1 + .28 leaves it unclipped
    close(stats["clip_frac_high"], 0.0)


def test_kl_penalty_is_added_per_token() -> None:
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -2.0]])
    base, _ = policy_loss(logp, logp, torch.tensor([0.0]), torch.ones(1, 2), 0.2, 0.2, "token_mean")
    loss, stats = policy_loss(logp, logp, torch.tensor([0.0]), torch.ones(1, 2), 0.2, 0.2, "token_mean",
                              ref_logp=ref, kl_coef=0.1, kl_kind="k1")
    close(stats["kl"], 0.25)  # mean(.5, 0)
    close(loss - base, 0.025)  # .1 x .25
