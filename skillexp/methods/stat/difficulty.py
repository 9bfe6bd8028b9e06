"""Stage 1 of STAT: which validation questions does the student find difficult?

Three detectors (`method.stat.difficulty`), each over `samples_per_question` student samples per question:
- `ground_truth` (default): the student's accuracy against the gold answers is at most `max_accuracy` (0: no
  sample right). The paper's PRM needs no gold answers; where they exist they are the exact and cheapest signal,
  and the two other detectors are reported against them.
- `prm`: a process reward model with the paper's τ1/τ2 rule (`prm.py`); the sample with the highest mean step
  reward is judged, as in the authors' code.
- `consistency`: fewer than `consistency_min_agree` samples agree on a final answer (paper Table 11).
The solution the teacher later reads is the first wrong sample (ground truth), the judged sample (PRM), or the
first sample (consistency). When more than `num_difficult` questions are difficult a seeded random subset is kept
(the paper filters 500 and does not say how).

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

from skillexp.methods.config import SFTDataInputs, StatConfig
from skillexp.methods.sampling import base_generator, sample
from skillexp.methods.stat.prm import PRMScorer, prm_difficult, solution_steps
from skillexp.methods.stat.skills import subsample
from skillexp.runtime import Runtime
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool


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


def student_samples(inputs: SFTDataInputs, rt: Runtime, task: Task, items: Sequence[Item]) -> list[dict[str, Any]]:
    """The student's answers to the validation questions (the generator is closed before any teacher starts)."""
    gen = base_generator(inputs, rt)
    try:
        comps = sample(gen, [task.messages(it) for it in items], inputs.samples_per_question, inputs.sampling,
                       inputs.seed)
    finally:
        gen.close()
    return [{"id": it.id, "completions": [c.text for c in cs], "truncated": [c.truncated for c in cs]}
            for it, cs in zip(items, comps, strict=True)]


def assess(task: Task, items: Sequence[Item], samples: Sequence[dict[str, Any]], st: StatConfig, pool: ScorePool,
           prm_model: str | None = None) -> list[dict[str, Any]]:
    """One row per question: difficult or not, the solution the teacher will judge, and the evidence."""
    texts = [row["completions"] for row in samples]
    flat = pool.score(task, [it for it, cs in zip(items, texts) for _ in cs], [c for cs in texts for c in cs])
    scores, start = [], 0
    for cs in texts:
        scores.append(flat[start:start + len(cs)])
        start += len(cs)
    rows = []
    if st.difficulty == "ground_truth":
        for item, cs, ss in zip(items, texts, scores):
            wrong = [c for c, s in zip(cs, ss) if s < 1]
            rows.append({"id": item.id, "difficult": fmean(ss) <= st.max_accuracy, "solution": (wrong or cs)[0]})
    elif st.difficulty == "consistency":
        groups = largest_agreement(task, items, [[task.extract(c) for c in cs] for cs in texts], pool)
        for item, cs, group in zip(items, texts, groups):
            rows.append({"id": item.id, "difficult": len(group) < st.consistency_min_agree, "solution": cs[0],
                         "agreeing": len(group)})
    else:
        rows = _assess_prm(task, items, texts, st, prm_model or st.prm.model)
    for row, ss in zip(rows, scores):
        row["accuracy"] = fmean(ss)
    return rows


def _assess_prm(task: Task, items: Sequence[Item], texts: Sequence[Sequence[str]], st: StatConfig,
                model: str) -> list[dict[str, Any]]:
    p = st.prm
    flat = [(item, c) for item, cs in zip(items, texts) for c in cs]
    answers = [task.extract(c) for _, c in flat]
    steps = [solution_steps(c, a, p.step_separator, p.max_steps) for (_, c), a in zip(flat, answers)]
    scorer = PRMScorer(p, model)
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


def pick_difficult(rows: Sequence[dict[str, Any]], limit: int, seed: int) -> list[dict[str, Any]]:
    """The difficult rows, a seeded random `limit` of them when there are more, in split order."""
    return subsample([r for r in rows if r["difficult"]], limit, seed, "difficult")


def difficulty_stats(rows: Sequence[dict[str, Any]], picked: int, prefix: str) -> dict[str, float]:
    """How many questions were difficult, the student's accuracy, and (for PRM / consistency) how well the flag
    matches ground truth (difficult = no sample right), as the paper's Table 8 reports for its PRM rule."""
    n = max(len(rows), 1)
    out = {f"{prefix}/val_questions": float(len(rows)), f"{prefix}/difficult": float(sum(r["difficult"] for r in rows)),
           f"{prefix}/difficult_profiled": float(picked),
           f"{prefix}/student_val_accuracy": fmean([r["accuracy"] for r in rows] or [0.0])}
    truth = [r["accuracy"] == 0 for r in rows]
    flagged = [r["difficult"] for r in rows]
    tp = sum(t and f for t, f in zip(truth, flagged))
    out[f"{prefix}/difficulty_vs_ground_truth/accuracy"] = sum(t == f for t, f in zip(truth, flagged)) / n
    out[f"{prefix}/difficulty_vs_ground_truth/precision"] = tp / max(sum(flagged), 1)
    out[f"{prefix}/difficulty_vs_ground_truth/recall"] = tp / max(sum(truth), 1)
    return out
