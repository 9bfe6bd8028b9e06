"""GRPO rollouts: which prompts a step uses, sampling their groups, rewards, and the tensors the update trains on.

Prompts come from the task's `rl` split in a per-epoch shuffled order fixed by the seed, so a step's prompts
depend only on (seed, how many were consumed before): a resumed run picks up exactly where it stopped.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch

from skillexp.generation.base import Completion, Generator, render_chat
from skillexp.rl.algorithms import zero_std_groups
from skillexp.rl.config import GRPOConfig
from skillexp.rl.ranks import all_true, rollout_share
from skillexp.rl.rewards import Reward
from skillexp.tasks.base import Item, Task


class PromptStream:
    """An endless, reproducible walk over the RL split: epoch e visits every item once, in order shuffle(seed, e)."""

    def __init__(self, items: Sequence[Item], seed: int, consumed: int = 0):
        if not items:
            raise ValueError("the task's rl split is empty: set task.num_rl > 0 (or use a task that has one).")
        self.items, self.seed, self.consumed = list(items), seed, consumed

    def take(self, n: int) -> list[Item]:
        out = []
        for _ in range(n):
            epoch, i = divmod(self.consumed, len(self.items))
            order = list(range(len(self.items)))
            random.Random(f"rl-{self.seed}-{epoch}").shuffle(order)
            out.append(self.items[order[i]])
            self.consumed += 1
        return out


@dataclass
class Rollouts:
    """Groups of `group_size` completions, consecutive, one row per completion."""

    group_size: int
    items: list[Item] = field(default_factory=list)
    prompts: list[list[int]] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time spent generating and scoring them

    def __len__(self) -> int:
        return len(self.completions)

    def groups(self, which: Sequence[int]) -> Rollouts:
        g = self.group_size
        rows = [i for k in which for i in range(k * g, (k + 1) * g)]
        return Rollouts(g, [self.items[i] for i in rows], [self.prompts[i] for i in rows],
                        [self.completions[i] for i in rows], [self.rewards[i] for i in rows],
                        {name: [v[i] for i in rows] for name, v in self.terms.items()})

    def extend(self, other: Rollouts) -> None:
        self.items += other.items
        self.prompts += other.prompts
        self.completions += other.completions
        self.rewards += other.rewards
        for name, values in other.terms.items():
            self.terms.setdefault(name, []).extend(values)
        for name, value in other.seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + value


def sample_groups(gen: Generator, task: Task, items: list[Item], reward: Reward, cfg: GRPOConfig,
                  seed: int, first: int = 0, keep: slice = slice(None)) -> Rollouts:
    """`group_size` completions of each item, scored; `first` is the place of items[0] in the step's batch, which
    (with vLLM) fixes each prompt's random draws whatever rank samples it. Only the groups of `items[keep]` are
    scored and returned (a tensor-parallel engine's ranks all sample the engine's items; each keeps its part)."""
    t0 = time.perf_counter()
    prompts = render_chat(gen.tokenizer, [task.messages(it, cfg.prompt) for it in items])
    outs = gen.generate(prompts, cfg.sampling.params(cfg.group_size, seed, prompt_index=first))
    items, prompts, outs = items[keep], prompts[keep], outs[keep]
    t1 = time.perf_counter()
    flat_items = [it for it in items for _ in range(cfg.group_size)]
    comps = [c for group in outs for c in group]
    rewards, terms = reward(flat_items, [c.text for c in comps])
    seconds = {"generate": t1 - t0, "score": time.perf_counter() - t1}
    return Rollouts(cfg.group_size, flat_items, [p for p in prompts for _ in range(cfg.group_size)], comps,
                    rewards, terms, seconds)


def collect(gen: Generator, task: Task, stream: PromptStream, reward: Reward, cfg: GRPOConfig,
            seed: int, tp: int = 1) -> tuple[Rollouts, int]:
    """This rank's share of one step's `prompts_per_step` groups, and how many sampling rounds it took. Every rank
    takes the whole step's prompts from the stream (so all streams stay at the same position) and samples its
    contiguous share. With drop_zero_std_groups (DAPO's dynamic sampling), groups whose rewards are all equal teach
    nothing: more prompts are sampled, up to `max_sampling_rounds` batches, until every rank has its share, and
    such groups only fill what is still missing at the end. With a rollout engine over `tp` ranks, the engine's
    ranks sample the engine's share together and each keeps its own part."""
    engine, part = rollout_share(cfg.prompts_per_step, tp, "rl.prompts_per_step")
    quota, mine = part.stop - part.start, slice(part.start - engine.start, part.stop - engine.start)

    def sample(round_seed: int) -> Rollouts:
        return sample_groups(gen, task, stream.take(cfg.prompts_per_step)[engine], reward, cfg, round_seed,
                             engine.start, mine)

    first = sample(seed)
    if not cfg.drop_zero_std_groups:
        return first, 1
    keep, spare, rounds = Rollouts(cfg.group_size), Rollouts(cfg.group_size), 0
    keep.seconds = dict(first.seconds)  # every round's time counts, also that of groups dropped
    batch = first
    while True:
        rounds += 1
        flat = zero_std_groups(torch.tensor(batch.rewards), cfg.group_size).tolist()
        need = quota - len(keep) // cfg.group_size
        keep.extend(batch.groups([k for k, z in enumerate(flat) if not z][:need]))
        spare.extend(batch.groups([k for k, z in enumerate(flat) if z]))
        if all_true(len(keep) // cfg.group_size == quota) or rounds == cfg.max_sampling_rounds:
            break
        batch = sample(seed + 7919 * rounds)
        for name, value in batch.seconds.items():
            keep.seconds[name] = keep.seconds.get(name, 0.0) + value
    missing = quota - len(keep) // cfg.group_size
    keep.extend(spare.groups(range(missing)))
    return keep, rounds


def rollout_tensors(rollouts: Rollouts, rows: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Prompts left-padded and completions right-padded, so every completion starts at the same column: the
    model then computes logits for the completion columns only (`logits_to_keep`), not for the prompts."""
    prompts = [rollouts.prompts[i] for i in rows]
    comps = [rollouts.completions[i].token_ids for i in rows]
    width, length = max(map(len, prompts)), max(1, max(map(len, comps)))
    ids = torch.full((len(rows), width + length), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    mask = torch.zeros((len(rows), length))
    for r, (p, c) in enumerate(zip(prompts, comps)):
        ids[r, width - len(p): width] = torch.tensor(p)
        ids[r, width: width + len(c)] = torch.tensor(c, dtype=torch.long)
        attention[r, width - len(p): width + len(c)] = 1
        mask[r, : len(c)] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": attention, "position_ids": positions, "completion_mask": mask}


def group_tensors(rollouts: Rollouts, groups: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Each group's prompt once (left-padded, [n, W]) and its completions ([n x G, C], right-padded): the
    shared-prompt forward runs the prompt once per group instead of once per completion."""
    g = rollouts.group_size
    prompts = [rollouts.prompts[k * g] for k in groups]
    comps = [rollouts.completions[k * g + j].token_ids for k in groups for j in range(g)]
    width, length = max(map(len, prompts)), max(1, max(map(len, comps)))
    prompt_ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    prompt_attention = torch.zeros_like(prompt_ids)
    for r, p in enumerate(prompts):
        prompt_ids[r, width - len(p):] = torch.tensor(p)
        prompt_attention[r, width - len(p):] = 1
    ids = torch.full((len(comps), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(comps), length))
    for r, c in enumerate(comps):
        ids[r, : len(c)] = torch.tensor(c, dtype=torch.long)
        mask[r, : len(c)] = 1
    return {"prompt_ids": prompt_ids, "prompt_attention": prompt_attention, "completion_ids": ids,
            "completion_mask": mask}
