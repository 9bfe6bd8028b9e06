"""The Task protocol: one object builds items, writes prompts, extracts answers and scores them.

As in nanochat, `score` is both the eval metric and (later) the RL reward, so the two can never drift apart.
Tasks are pure Python over strings: no torch, no generation, no training code may be imported here.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

SPLITS = ("train", "rl", "val", "test")


@dataclass(frozen=True)
class Item:
    """One problem. `answer` is the gold answer as a canonical string; `meta` holds task specifics."""

    id: str
    question: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """A task variant, e.g. `countdown_4`. Subclasses are constructed from validated config dataclasses."""

    name: str  # the variant name used in metric keys ("countdown_4/mean@4")
    answer_type: str = "answer"  # fills the SkillFactory prompts' {answer_type_str}

    @abstractmethod
    def items(self, split: str) -> list[Item]:
        """Items of one split in SPLITS; deterministic for a given config and seed; splits are disjoint."""

    @abstractmethod
    def messages(self, item: Item) -> list[dict[str, str]]:
        """Chat messages (HF format) that pose `item` to a model."""

    @abstractmethod
    def extract(self, completion: str) -> str | None:
        """The final answer in a completion (last `<answer>` span for tag tasks), or None if there is none."""

    @abstractmethod
    def score(self, item: Item, completion: str) -> float:
        """Reward in [0, 1]. Must be bounded in time and memory and never raise on model output."""

    def reference_solution(self, item: Item) -> str:
        """A correct completion in this task's answer format (used by `method=sft` later)."""
        return f"<answer>{item.answer}</answer>"
