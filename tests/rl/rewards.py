"""Reward terms for the GRPO tests, loaded by import path like any user's plug-in."""
from __future__ import annotations

from skillexp.tasks.base import Item


def letter_a(completion: str, item: Item) -> float:
    """The share of characters that are "a": about 5% for the random tiny model at first, and learnable."""
    return completion.count("a") / max(len(completion), 1)


def letter_a_some(completion: str, item: Item) -> float:
    """`letter_a` for one item in four (by id), 0 for the rest: most groups are flat (advantage 0) and some whole
    steps are, the cases GRPO skips the forward of."""
    return letter_a(completion, item) if sum(map(ord, item.id)) % 4 == 0 else 0.0
