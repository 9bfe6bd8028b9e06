"""GRPO on data-parallel ranks: each rank's share of a step, and the few collectives that make N ranks' update
the one a single rank would make on the same rollouts.

Every rank walks the same prompt stream and keeps its contiguous share of each step's prompts (whole groups, so
group statistics never cross ranks). What must be global is global: the rewards every advantage sees (TRL's
batch-level std needs them all), the normaliser of every loss aggregation (all-reduced per update), the logged
diagnostics. With one process every function here is the identity, so the single-process path is the same code.

A rollout engine may span a group of `generation.tensor_parallel_size` consecutive ranks (vLLM's tensor parallelism
over the ranks' GPUs, for a model one GPU cannot serve): the group's ranks make the same generate calls on the
group's share of the prompts, get the same samples, and each keeps and scores its own part (`rollout_share`;
`GenerationConfig.engines` checks the layout).
"""
from __future__ import annotations

from typing import Any

import torch


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    dist = _dist()
    return (dist.get_rank(), dist.get_world_size()) if dist else (0, 1)


def share(total: int, what: str) -> slice:
    """This rank's contiguous share of `total` prompts (or rows); `what` names the setting for the error."""
    rank, size = world()
    if total % size:
        raise ValueError(f"{what}={total} does not split over {size} ranks: make it a multiple of "
                         f"trainer.num_processes x nodes = {size}.")
    per = total // size
    return slice(rank * per, (rank + 1) * per)


def rollout_share(total: int, tp: int, what: str) -> tuple[slice, slice]:
    """(the prompts this rank's engine samples, the part of them this rank keeps): slices of the step's `total`
    prompts. The engine's ranks share its slice; each keeps its contiguous part of it, which is `share(total)`."""
    rank, size = world()
    own = share(total, what)
    if tp == 1 or size == 1:  # one process: its engine, tensor-parallel or not, is all of it
        return own, own
    per = own.stop - own.start
    first = rank // tp * tp  # the engine's first rank
    return slice(first * per, (first + tp) * per), own


def _device() -> torch.device:
    dist = _dist()
    if dist is not None and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _reduce(values: list[float], op: str) -> list[float]:
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    return t.tolist()


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sums over ranks, in float64 (token counts and losses stay exact enough to compare)."""
    return _reduce(values, "SUM")


def all_max(stats: dict[str, float]) -> dict[str, float]:
    """The maximum over ranks of each value (a step takes as long as its slowest rank); same keys on every rank."""
    keys = sorted(stats)
    return dict(zip(keys, _reduce([stats[k] for k in keys], "MAX")))


def all_mean(stats: dict[str, float]) -> dict[str, float]:
    """The mean over ranks of each value (every rank must pass the same keys, in any order)."""
    keys = sorted(stats)
    size = world()[1]
    return dict(zip(keys, (v / size for v in all_sum([stats[k] for k in keys]))))


def all_true(flag: bool) -> bool:
    """True only if `flag` is true on every rank (DAPO's refill loop ends for all ranks together)."""
    return all_sum([0.0 if flag else 1.0])[0] == 0


def gather(values: list[Any]) -> list[Any]:
    """Every rank's list, concatenated in rank order (rank 0's first): the global batch's rows."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return list(values)
    out: list[list[Any]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(out, list(values))
    return [v for part in out for v in part]


def barrier() -> None:
    dist = _dist()
    if dist is not None and dist.get_world_size() > 1:
        dist.barrier()
