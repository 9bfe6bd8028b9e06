"""Countdown: reach a target from N numbers with + - * /, each number used at most once (SkillFactory's task).

Generation: numbers are drawn uniformly from [min_number, max_number] (1-100 by default: our choice, the
paper states no range); the target is the value of a random binary expression over ALL N numbers whose intermediates are
non-negative integers (subtraction keeps the larger operand first, division only when exact). That expression is
the stored reference solution, so every item is solvable. Problems whose target falls outside
[min_target, max_target] or equals one of the numbers (trivially solved by writing it down) are redrawn. One seeded
stream of unique problems (deduplicated on (sorted numbers, target)) is cut test, val, rl, train.

Grading: the answer is the last `<answer>` span, an expression such as `(3 + 5) * 2`, optionally followed by
`= 16`; the `= rhs` form is accepted only when rhs is exactly the target, so a wrong claimed result scores 0.
The checker accepts any exact rational arithmetic (fractions along the way are fine) that reaches the target
using a sub-multiset of the numbers: the paper's rule is "each number can be used at most once", so not every
number has to appear. Evaluation is the bounded AST walk of `safe_arith`, never `eval`.

For data-building methods (STAT) a question is its numbers and target: the same numbers in any order pose the same
problem, any valid expression over them can stand in as the gold answer (its value becomes the target), and a
question that states its numbers and target needs no gold answer to be checked.
"""
from __future__ import annotations

import operator
import random
import re
from dataclasses import dataclass, replace
from typing import Annotated

from skillexp.tasks.base import SKILL_CATALOGUES, Item, Task, partition
from skillexp.tasks.safe_arith import evaluate, uses_at_most_once
from skillexp.utils.schema import NON_NEGATIVE, Range


@dataclass
class CountdownConfig:
    num_numbers: Annotated[int, Range(2, 8)] = 3  # SkillFactory trains on 3 and evaluates 3-6
    min_number: Annotated[int, Range(1, 10_000)] = 1
    max_number: Annotated[int, Range(1, 10_000)] = 100
    min_target: Annotated[int, NON_NEGATIVE] = 1
    max_target: Annotated[int, NON_NEGATIVE] = 1000
    data_seed: int = 1234  # fixes the items; independent of the run seed so every run sees the same test set
    num_train: Annotated[int, NON_NEGATIVE] = 4000  # SkillFactory: 4,000 questions for SFT data
    num_rl: Annotated[int, NON_NEGATIVE] = 1000  # and a disjoint 1,000 for RL
    num_val: Annotated[int, NON_NEGATIVE] = 200
    num_test: Annotated[int, NON_NEGATIVE] = 500
    lenient: bool = False  # without an <answer> tag, grade the last equation-like span (for small models)

    def __post_init__(self) -> None:
        if self.min_number > self.max_number or self.min_target > self.max_target:
            raise ValueError("need min_number <= max_number and min_target <= max_target")


_INT_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}


def random_solution(rng: random.Random, numbers: list[int]) -> tuple[str, int]:
    """Combine all numbers pairwise in random order into (expression, value), integer intermediates >= 0."""
    terms = [(str(n), n) for n in numbers]
    rng.shuffle(terms)
    while len(terms) > 1:
        (ea, a), (eb, b) = terms.pop(), terms.pop()
        if a < b:
            (ea, a), (eb, b) = (eb, b), (ea, a)
        ops = "+-*/" if b and a % b == 0 else "+-*"
        op = rng.choice(ops)
        value = _INT_OPS[op](a, b)
        expr = f"{_wrap(ea)} {op} {_wrap(eb)}"
        terms.insert(rng.randrange(len(terms) + 1), (expr, value))
    return terms[0]


def _wrap(expr: str) -> str:
    return expr if expr.isdigit() else f"({expr})"


# For lenient grading only: runs of digits, operators, parentheses and spaces, optionally "= <int>". Character
# classes with one quantifier each keep matching linear; the scanned tail is capped at 2,000 chars.
_EQUATION = re.compile(r"[0-9(][0-9 ()+\-*/×÷]{0,200}(?:=[ ]{0,4}[0-9]{1,12})?")
_OPERATOR = re.compile(r"[0-9)][ ]{0,4}[+\-*/×÷][ ]{0,4}[0-9(]")
# A question in free text: "... the list [3, 7, 25], create an equation that equals 104". Bounded classes keep
# matching linear; only the first MAX_QUESTION_CHARS of a question are read.
_STATED_QUESTION = re.compile(r"\[([0-9][0-9 ,]{0,80})\][^\[\]]{0,200}?\bequals?(?: to)? ([0-9]{1,6})\b")
MAX_QUESTION_CHARS = 2_000


class CountdownTask(Task):
    answer_type = "equation"
    skill_catalogue = SKILL_CATALOGUES / "countdown.json"

    def __init__(self, cfg: CountdownConfig, name: str):
        super().__init__(name, cfg.lenient)
        self.cfg = cfg

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        rng = random.Random(f"countdown-{c.num_numbers}-{c.data_seed}")  # str seeds hash stably (sha512)
        total = c.num_test + c.num_val + c.num_rl + c.num_train
        seen: set[tuple[tuple[int, ...], int]] = set()
        rows: list[tuple[list[int], int, str]] = []
        attempts = 0
        while len(rows) < total:
            attempts += 1
            if attempts > 200 * total + 10_000:
                raise ValueError(f"countdown: could not make {total} distinct problems with these ranges; widen "
                                 "min/max_number or min/max_target, or ask for fewer items.")
            numbers = [rng.randint(c.min_number, c.max_number) for _ in range(c.num_numbers)]
            expr, target = random_solution(rng, numbers)
            key = (tuple(sorted(numbers)), target)
            if (c.min_target <= target <= c.max_target and target not in numbers and key not in seen
                    and evaluate(expr) is not None):  # the reference must pass the checker's size bounds
                seen.add(key)
                rows.append((numbers, target, expr))
        sizes = {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train}
        return {
            split: [Item(id=f"{self.name}-{split}-{i}", question=self.question(nums, target), answer=expr,
                         meta={"numbers": nums, "target": target})
                    for i, (nums, target, expr) in enumerate(part)]
            for split, part in partition(rows, sizes).items()
        }

    @staticmethod
    def question(numbers: list[int], target: int) -> str:
        return (f"Using the numbers in the list {numbers}, create an equation that equals {target}. You can use "
                "basic arithmetic operations (+, -, *, /) and each number can only be used once.")

    def _lenient_extract(self, completion: str) -> str | None:
        spans = [s.strip() for s in _EQUATION.findall(completion[-2_000:]) if _OPERATOR.search(s)]
        return spans[-1] if spans else None

    def check(self, item: Item, answer: str) -> bool:
        target = item.meta["target"]
        expr, eq, rhs = answer.partition("=")
        if eq and rhs.strip() != str(target):
            return False
        result = evaluate(expr)
        return (result is not None and result.value == target
                and uses_at_most_once(result.numbers, item.meta["numbers"]))

    def reference_solution(self, item: Item) -> str:
        return f"<answer>{item.answer}</answer>"

    @staticmethod
    def _stated(item: Item) -> bool:
        return {"numbers", "target"} <= set(item.meta)

    def problem_key(self, item: Item) -> str:
        """The numbers in any order and the target; the question's wording when `meta` lacks them."""
        if self._stated(item):
            return f"countdown:{sorted(item.meta['numbers'])}:{item.meta['target']}"
        return super().problem_key(item)

    def with_gold(self, item: Item, answer: str) -> Item | None:
        """`item` with target the value of `answer`, or None when `answer` is no valid expression over the
        question's numbers (or they are unknown)."""
        value = evaluate(answer.partition("=")[0])
        if value is None or "numbers" not in item.meta or not uses_at_most_once(value.numbers, item.meta["numbers"]):
            return None
        return replace(item, answer=answer, meta={**item.meta, "target": value.value})

    def read_question(self, item: Item) -> Item:
        """The numbers (2 to 8 of them) and target a question states in this task's wording read into `meta`."""
        if self._stated(item):
            return item
        match = _STATED_QUESTION.search(item.question[:MAX_QUESTION_CHARS])
        numbers = [int(n) for n in re.findall(r"[0-9]{1,6}", match[1])] if match else []
        if not 2 <= len(numbers) <= 8:
            return item
        return replace(item, meta={**item.meta, "numbers": numbers, "target": int(match[2])})

    def checkable(self, item: Item) -> bool:
        """With a gold answer, or with the numbers and target (the target is the answer)."""
        return super().checkable(item) or self._stated(item)
