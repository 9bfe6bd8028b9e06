"""GRPO rewards: a weighted sum of named terms, each a function of (completion, item).

"task" is the task's own `score`, the same verifier the eval stage uses (nanochat's one-Task idea), run in the
scoring pool's worker processes: math-verify needs a main thread, and untrusted text needs a time limit. "format"
is a bounded count of answer tags. Any other key is a dotted import path `package.module.function` (dots only, so
it fits a Hydra override), called in this process as `f(completion: str, item: Item) -> float`; it must be cheap
and must not trust the completion.
"""
from __future__ import annotations

import importlib
from typing import Callable, Sequence

from skillexp.rl.config import RewardTerm
from skillexp.tasks.answer import MAX_SCAN_CHARS
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool

RewardFn = Callable[[str, Item], float]


def answer_format(completion: str, item: Item) -> float:
    """1 for exactly one complete `<answer>…</answer>` span (in the scanned tail), else 0."""
    tail = completion[-MAX_SCAN_CHARS:]
    return float(tail.count("<answer>") == 1 and tail.count("</answer>") == 1
                 and tail.index("<answer>") < tail.index("</answer>"))


BUILTIN: dict[str, RewardFn] = {"format": answer_format}


def resolve(name: str) -> RewardFn:
    if name in BUILTIN:
        return BUILTIN[name]
    module, sep, attr = name.rpartition(".")
    if not sep:
        raise ValueError(f"unknown reward term {name!r}: use 'task', 'format' or an import path "
                         "'package.module.function'.")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"reward term {name!r} cannot be imported: {e}") from e
    if not callable(fn):
        raise ValueError(f"reward term {name!r} is not callable.")
    return fn


class Reward:
    """`rl.rewards` as a callable over a batch: the total per completion, and each term for diagnostics."""

    def __init__(self, terms: Sequence[RewardTerm], task: Task, pool: ScorePool):
        self.task, self.pool = task, pool
        self.weights = {t.fn: t.weight for t in terms}
        self.fns = {t.fn: resolve(t.fn) for t in terms if t.fn != "task"}

    def __call__(self, items: Sequence[Item], completions: Sequence[str]) -> tuple[list[float], dict[str, list[float]]]:
        parts: dict[str, list[float]] = {}
        if "task" in self.weights:
            parts["task"] = self.pool.score(self.task, items, completions)
        for name, fn in self.fns.items():
            parts[name] = [float(fn(text, item)) for text, item in zip(completions, items)]
        total = [sum(self.weights[name] * values[i] for name, values in parts.items())
                 for i in range(len(completions))]
        return total, parts
