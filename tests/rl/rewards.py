"""Reward terms for the GRPO tests, loaded by import path like any user's plug-in."""
from __future__ import annotations

from skillexp.tasks.base import Item


def letter_a(completion: str, item: Item) -> float:
    """The share of characters that are "a": about 5% for the random tiny model at first, and learnable."""
    return completion.count("a") / max(len(completion), 1)
