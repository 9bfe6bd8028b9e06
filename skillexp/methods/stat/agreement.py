"""When do two answers agree? The task's own checker decides, with one of them standing in as the gold answer.

Used by the consistency heuristic for difficult questions (paper Table 11: fewer than 2 of 5 samples agree) and by
STAT-Syn's filter (keep a synthetic question when at least 2 teacher solutions agree). For math the checker is
math-verify's equivalence; for Countdown two expressions agree when both are valid over the question's numbers
and have the same value. Checks run in ScorePool workers: math-verify needs a main thread, and untrusted text
stays out of the process that holds the model.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from skillexp.tasks.base import Item, Task
from skillexp.tasks.countdown import CountdownTask
from skillexp.tasks.safe_arith import evaluate, uses_at_most_once
from skillexp.tasks.scoring import ScorePool


def as_gold(task: Task, item: Item, answer: str) -> Item | None:
    """`item` with `answer` as its gold, or None when `answer` cannot be one (an invalid Countdown expression)."""
    if isinstance(task, CountdownTask):
        value = evaluate(answer.partition("=")[0])
        if value is None or not uses_at_most_once(value.numbers, item.meta["numbers"]):
            return None
        return replace(item, answer=answer, meta={**item.meta, "target": value.value})
    return replace(item, answer=answer)


def largest_agreement(task: Task, items: Sequence[Item], answers: Sequence[Sequence[str | None]],
                      pool: ScorePool) -> list[list[int]]:
    """For each item, the indices of its answers that agree with the best-supported one (the first such answer on
    ties; [] when no answer is valid). Each pair of distinct answers is checked once per direction."""
    jobs: list[tuple[int, str, str]] = []
    golds: list[Item] = []
    texts: list[str] = []
    for q, (item, row) in enumerate(zip(items, answers, strict=True)):
        distinct = list(dict.fromkeys(a for a in row if a))
        for a in distinct:
            gold = as_gold(task, item, a)
            if gold is None:
                continue
            for b in distinct:
                jobs.append((q, a, b))
                golds.append(gold)
                texts.append(task.reference_solution(replace(item, answer=b)))
    scores = pool.score(task, golds, texts) if jobs else []
    agrees: dict[tuple[int, str], set[str]] = {}
    for (q, a, b), score in zip(jobs, scores, strict=True):
        if score >= 1:
            agrees.setdefault((q, a), set()).add(b)
    out = []
    for q, row in enumerate(answers):
        best: list[int] = []
        for a in dict.fromkeys(x for x in row if x):
            group = [i for i, b in enumerate(row) if b in agrees.get((q, a), ())]
            if len(group) > len(best):
                best = group
        out.append(best)
    return out
