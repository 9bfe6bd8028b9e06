"""Countdown: reach a target from N numbers with + - * /, each number used at most once (SkillFactory's task).

Items are solvable by construction: the target is the value of a random expression tree over all N numbers with
integer, non-negative intermediates. The checker accepts any exact rational arithmetic that reaches the target with
a sub-multiset of the numbers, optionally written as `expr = target`.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from skillexp.tasks.base import Item, Task, partition
from skillexp.tasks.safe_arith import evaluate, uses_at_most_once


@dataclass
class CountdownConfig:
    num_numbers: int = 3
    min_number: int = 1
    max_number: int = 100
    min_target: int = 1
    max_target: int = 1000
    data_seed: int = 1234  # fixes the items; independent of the run seed so every run sees the same test set
    num_train: int = 4000  # SkillFactory: 4,000 questions for SFT data
    num_rl: int = 1000  # and a disjoint 1,000 for RL
    num_val: int = 200
    num_test: int = 500
    lenient: bool = False  # without an <answer> tag, grade the last equation-like span (for small models)

    def __post_init__(self) -> None:
        if not 2 <= self.num_numbers <= 8:
            raise ValueError(f"num_numbers must be in [2, 8], got {self.num_numbers}")
        if not 1 <= self.min_number <= self.max_number:
            raise ValueError("need 1 <= min_number <= max_number")
        if not self.min_target <= self.max_target:
            raise ValueError("need min_target <= max_target")


def _random_solution(rng: random.Random, numbers: list[int]) -> tuple[str, int] | None:
    """Combine all numbers pairwise in random order into (expression, value); None if a step is invalid."""
    terms = [(str(n), n) for n in numbers]
    rng.shuffle(terms)
    while len(terms) > 1:
        (ea, a), (eb, b) = terms.pop(), terms.pop()
        op = rng.choice("+-*/")
        if op == "-" and a < b:
            (ea, a), (eb, b) = (eb, b), (ea, a)
        if op == "/" and (b == 0 or a % b):
            op = "+"
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]
        wrap = lambda e: e if e.isdigit() else f"({e})"  # noqa: E731
        terms.insert(rng.randrange(len(terms) + 1), (f"{wrap(ea)} {op} {wrap(eb)}", value))
    return terms[0]


_EQUATION = re.compile(r"[\d(][\d\s()+\-*/×÷]*[\d)](?:\s*=\s*\d+)?")


class CountdownTask(Task):
    answer_type = "equation"

    def __init__(self, cfg: CountdownConfig, name: str):
        super().__init__(name, cfg.lenient)
        self.cfg = cfg

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        rng = random.Random(f"countdown-{c.num_numbers}-{c.data_seed}")
        total = c.num_test + c.num_val + c.num_rl + c.num_train
        seen: set[tuple] = set()
        rows: list[tuple[list[int], int, str]] = []
        attempts = 0
        while len(rows) < total:
            attempts += 1
            if attempts > 200 * total + 10_000:
                raise ValueError(f"countdown: could not make {total} distinct problems with these ranges; "
                                 "widen min/max_number or min/max_target, or ask for fewer items.")
            numbers = [rng.randint(c.min_number, c.max_number) for _ in range(c.num_numbers)]
            expr, target = _random_solution(rng, numbers)
            key = (tuple(sorted(numbers)), target)
            if not c.min_target <= target <= c.max_target or key in seen:
                continue
            seen.add(key)
            rows.append((numbers, target, expr))
        splits = partition(rows, {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train})
        return {
            split: [Item(id=f"{self.name}-{split}-{i}", question=self.question(nums, target), answer=expr,
                         meta={"numbers": nums, "target": target})
                    for i, (nums, target, expr) in enumerate(rows_)]
            for split, rows_ in splits.items()
        }

    @staticmethod
    def question(numbers: list[int], target: int) -> str:
        return (f"Using the numbers in the list {numbers}, create an equation that equals {target}. You can use "
                f"basic arithmetic operations (+, -, *, /) and each number can only be used once.")

    def _lenient_extract(self, completion: str) -> str | None:
        spans = [s for s in _EQUATION.findall(completion[-2_000:]) if re.search(r"[+\-*/×÷]", s)]
        return spans[-1].strip() if spans else None

    def check(self, item: Item, answer: str) -> bool:
        target = item.meta["target"]
        expr, _, rhs = answer.partition("=")
        if rhs and rhs.strip() != str(target):
            return False  # "expr = target" is accepted only with the right target on the right
        result = evaluate(expr)
        return (result is not None and result.value == target
                and uses_at_most_once(result.numbers, tuple(item.meta["numbers"])))

    def reference_solution(self, item: Item) -> str:
        return f"<answer>{item.answer}</answer>"
