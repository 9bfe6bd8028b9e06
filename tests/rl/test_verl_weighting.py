"""rl=grpo computes SkillFactory's released GRPO loss: verl 0.4.1.dev as the team's fork ran it (Jacklu0831/verl
at faa8bb4). That run sets `ppo_micro_batch_size_per_gpu=1` and leaves `use_dynamic_bsz: false` and
`loss_agg_mode: token-mean` at their defaults (the SkillFactory README's command; the fork's
verl/trainer/config/actor/actor.yaml lines 21 and 61). Its actor (verl/workers/actor/dp_actor.py lines 437-447 and
541-546) takes the token mean inside each micro-batch, one sequence, and divides it by the gradient accumulation
steps (the mini-batch's sequences per GPU); FSDP averages the ranks' gradients. The update's loss is therefore the
mean over its sequences of each sequence's token mean: our `seq_mean_token_mean`, which a token mean over the
whole update is not."""
from __future__ import annotations

import pytest
import torch

from skillexp.config import load_run_config
from skillexp.rl.algorithms import agg_denominator, aggregate
from tests.test_configs import _compose

# per-token losses of one mini-batch: 4 sequences of 1, 3, 2 and 4 response tokens (0 = padding)
LOSSES = torch.tensor([[3.0, 0, 0, 0], [1.0, 1.0, 1.0, 0], [2.0, 6.0, 0, 0], [1.0, 2.0, 3.0, 6.0]])
MASK = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])


def verl_fork_loss(losses: torch.Tensor, mask: torch.Tensor, world: int) -> float:
    """What the fork back-propagates for one mini-batch on `world` GPUs, micro-batches of one sequence: on each
    rank, sum over its micro-batches of token-mean / gradient_accumulation; then the mean over ranks."""
    per_rank = losses.shape[0] // world
    ranks = []
    for r in range(world):
        rows = range(r * per_rank, (r + 1) * per_rank)
        ranks.append(sum(float((losses[i] * mask[i]).sum() / mask[i].sum()) / per_rank for i in rows))
    return sum(ranks) / world


def test_the_hand_computed_example() -> None:
    # token means 3, 1, 4, 3 -> their mean 2.75; one token mean over the update: 26 / 10 = 2.6
    for world in (1, 2, 4):
        assert verl_fork_loss(LOSSES, MASK, world) == pytest.approx(2.75)
    assert float(aggregate(LOSSES, MASK, "seq_mean_token_mean")) == pytest.approx(2.75)
    assert float(aggregate(LOSSES, MASK, "token_mean")) == pytest.approx(2.6)


@pytest.mark.parametrize("micro", [1, 2, 4])
def test_our_accumulated_micro_batches_give_the_forks_loss(micro: int) -> None:
    """Whatever our micro-batch layout, the parts divided by the whole update's denominator add up to it."""
    denominator = agg_denominator(MASK, "seq_mean_token_mean")
    parts = [aggregate(LOSSES[i:i + micro], MASK[i:i + micro], "seq_mean_token_mean", denominator=denominator)
             for i in range(0, 4, micro)]
    assert float(sum(parts)) == pytest.approx(verl_fork_loss(LOSSES, MASK, 4))


def test_the_skillfactory_preset_aggregates_as_its_run_did() -> None:
    run = load_run_config(_compose(["rl=grpo"]))
    assert run.rl.loss_agg == "seq_mean_token_mean"
