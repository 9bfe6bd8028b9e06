"""Which questions does a model find difficult, by its sampled traces? (STAT's stage 1, and the eval's difficult
subsets.)

Three detectors (`method.stat.difficulty`, `eval.variants.<name>.subset.detector`), each over the model's samples
of a question:
- `ground_truth` (default): the model's accuracy against the gold answers is at most `max_accuracy` (0: no
  sample right). The paper's PRM needs no gold answers; where they exist they are the exact and cheapest signal,
  and the two other detectors are reported against them.
- `prm`: a process reward model with the paper's τ1/τ2 rule (`traces/prm.py`); the sample with the highest mean step
  reward is judged, as in the authors' code.
- `consistency`: fewer than `consistency_min_agree` samples agree on a final answer (paper Table 11).
The solution a teacher later reads is the first wrong sample (ground truth), the judged sample (PRM), or the first
sample (consistency).

Answers agree when the task's own checker accepts one with the other standing in as the gold answer
(`Task.with_gold`): math-verify's equivalence for math; for a task whose questions state their target, two answers
that are valid for the question and reach the same value. STAT-Syn's consistency filter uses the same rule. Checks
run in ScorePool workers: math-verify needs a main thread, and untrusted text stays out of the process that holds
the model.
"""
from __future__ import annotations

from dataclasses import replace
from statistics import fmean
from typing import Any, Sequence

from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool
from skillexp.traces.config import DifficultyRule, PRMConfig
from skillexp.traces.prm import PRMScorer, prm_difficult, solution_steps


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
            gold = task.with_gold(item, a)
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


def assess(task: Task, items: Sequence[Item], samples: Sequence[dict[str, Any]], rule: DifficultyRule,
           pool: ScorePool) -> list[dict[str, Any]]:
    """One row per question: difficult or not, the solution the teacher will judge, and the evidence."""
    texts = [row["completions"] for row in samples]
    flat = pool.score(task, [it for it, cs in zip(items, texts) for _ in cs], [c for cs in texts for c in cs])
    scores, start = [], 0
    for cs in texts:
        scores.append(flat[start:start + len(cs)])
        start += len(cs)
    rows = []
    if rule.detector == "ground_truth":
        for item, cs, ss in zip(items, texts, scores):
            wrong = [c for c, s in zip(cs, ss) if s < 1]
            rows.append({"id": item.id, "difficult": fmean(ss) <= rule.max_accuracy, "solution": (wrong or cs)[0]})
    elif rule.detector == "consistency":
        groups = largest_agreement(task, items, [[task.extract(c) for c in cs] for cs in texts], pool)
        for item, cs, group in zip(items, texts, groups):
            rows.append({"id": item.id, "difficult": len(group) < rule.consistency_min_agree, "solution": cs[0],
                         "agreeing": len(group)})
    else:
        rows = _assess_prm(task, items, texts, rule.prm)
    for row, ss in zip(rows, scores):
        row["accuracy"] = fmean(ss)
    return rows


def _assess_prm(task: Task, items: Sequence[Item], texts: Sequence[Sequence[str]],
                p: PRMConfig) -> list[dict[str, Any]]:
    flat = [(item, c) for item, cs in zip(items, texts) for c in cs]
    answers = [task.extract(c) for _, c in flat]
    steps = [solution_steps(c, a, p.step_separator, p.max_steps) for (_, c), a in zip(flat, answers)]
    scorer = PRMScorer(p)
    try:
        rewards = scorer.step_rewards([it.question for it, _ in flat], steps)
    finally:
        scorer.close()
    rewards = [r if a is not None else [*r, 0.0] for r, a in zip(rewards, answers)]  # never empty
    rows, start = [], 0
    for item, cs in zip(items, texts):
        mine = rewards[start:start + len(cs)]
        best = max(range(len(cs)), key=lambda j: fmean(mine[j]))
        rows.append({"id": item.id, "difficult": prm_difficult(mine[best], p.tau1, p.tau2, p.rule),
                     "solution": cs[best], "rewards": mine[best]})
        start += len(cs)
    return rows
