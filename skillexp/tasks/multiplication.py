"""Long multiplication, D digits x D digits: an out-of-domain task in SkillFactory's evaluation (2-5 digits).

Both factors are uniform D-digit integers (leading digit non-zero); pairs are unique within the task, and the
splits are cut test, val, rl, train from one seeded stream. Answer format: one integer in `<answer>`, ASCII
digits, optionally with correctly placed thousands commas (`1,234,567`) and a trailing period. Spaces inside the
number (`1 234`) and anything else (`= 408`, units) score 0, since they are ambiguous to parse and the prompt
asks for a number.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Annotated

from skillexp.tasks.answer import last_integer
from skillexp.tasks.base import Item, Task, partition
from skillexp.utils.schema import NON_NEGATIVE, Range

_NUMBER = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+|-?[0-9]+")


@dataclass
class MultiplicationConfig:
    digits: Annotated[int, Range(1, 9)] = 2
    data_seed: int = 1234  # fixes the items; independent of the run seed
    num_train: Annotated[int, NON_NEGATIVE] = 4000
    num_rl: Annotated[int, NON_NEGATIVE] = 1000
    num_val: Annotated[int, NON_NEGATIVE] = 200
    num_test: Annotated[int, NON_NEGATIVE] = 500
    lenient: bool = False  # without an <answer> tag, grade the last integer in the completion


class MultiplicationTask(Task):
    answer_type = "number"

    def __init__(self, cfg: MultiplicationConfig, name: str):
        super().__init__(name, cfg.lenient)
        self.cfg = cfg

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        lo, hi = 10 ** (c.digits - 1), 10**c.digits - 1
        rng = random.Random(f"multiplication-{c.digits}-{c.data_seed}")
        sizes = {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train}
        # 1 digit has only 81 pairs: the splits shrink (train first, test last) rather than repeat a pair
        total = min(sum(sizes.values()), (hi - lo + 1) ** 2)
        pairs: dict[tuple[int, int], None] = {}  # an insertion-ordered set
        while len(pairs) < total:
            pairs[(rng.randint(lo, hi), rng.randint(lo, hi))] = None
        return {
            split: [Item(id=f"{self.name}-{split}-{i}", question=f"What is {a} x {b}?", answer=str(a * b),
                         meta={"a": a, "b": b}) for i, (a, b) in enumerate(rows)]
            for split, rows in partition(list(pairs), sizes).items()
        }

    def _lenient_extract(self, completion: str) -> str | None:
        return last_integer(completion)

    def check(self, item: Item, answer: str) -> bool:
        answer = answer.strip().removesuffix(".")
        return bool(_NUMBER.fullmatch(answer)) and answer.replace(",", "") == item.answer

    def reference_solution(self, item: Item) -> str:
        return f"{item.meta['a']} x {item.meta['b']} = {item.answer}\n<answer>{item.answer}</answer>"
