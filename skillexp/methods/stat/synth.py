"""STAT-Syn (paper §2.4, App. B.2, C.3.3): synthesise new questions that stress the profiled skills.

Per (difficult question, missing skill) pair the teacher sees `examples_per_proposal` (3) questions from the skill
map's list for the skill and proposes `questions_per_pair` (2) new ones (one call with n=2; the paper's proposer is
GPT-4o, which here is whatever `teacher=` is). Proposals that repeat an earlier proposal or a val/test question are
dropped before solving (counted): synthetic data must not leak the questions the run is evaluated or profiled on.
The teacher solves each remaining question `solutions_per_question` (3) times, and a question is kept when at
least `min_agree` (2) solutions agree; its agreeing solutions are its answers (an exact repeat once). Agreement:
where the task's checker can verify a solution on its own (`Task.checkable`: e.g. a task whose questions state
their target; the oracle's proposals carry it, an LLM's are read back from its wording by `Task.read_question`)
the solutions it accepts, else the largest group of equivalent final answers (math-verify for math). "The same
question" is `Task.problem_key`. The rows are subsampled to `method.num_pairs`.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Any, Sequence

from skillexp.methods.config import StatConfig
from skillexp.traces.difficulty import largest_agreement
from skillexp.methods.stat.skills import SkillMap, item_row, row_item, sft_row, subsample
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool
from skillexp.teachers.base import Teacher

MAX_DRAFT_CHARS = 2_000


def proposal_rows(task: Task, teacher: Teacher, pairs: Sequence[tuple[str, str]], skill_map: SkillMap,
                  st: StatConfig, seed: int) -> list[dict[str, Any]]:
    """The teacher's proposals, one call per pair that has examples (pairs without are skipped)."""
    rng = random.Random(f"stat-syn-{seed}")
    asked = []
    for i, (difficult_id, skill) in enumerate(pairs):
        candidates = skill_map.questions.get(skill, [])
        if candidates:
            asked.append((i, difficult_id, skill, rng.sample(candidates, min(st.examples_per_proposal,
                                                                                len(candidates)))))
    proposals = teacher.propose([a[3] for a in asked], [a[2] for a in asked], n=st.questions_per_pair, seed=seed)
    return [{"pair": i, "skill": skill, "difficult_id": difficult_id, "examples": [it.id for it in examples],
             "item": item_row(task.read_question(p.item)), "draft": p.draft[:MAX_DRAFT_CHARS]}
            for (i, difficult_id, skill, examples), ps in zip(asked, proposals, strict=True) for p in ps]


def fresh_proposals(task: Task, proposals: Sequence[dict[str, Any]],
                    blocked: set[str]) -> tuple[list[dict], Counter[str]]:
    """Proposals that are new: not an eval question (`blocked` holds their problem keys), not an earlier proposal,
    not empty."""
    seen = set(blocked)
    kept, dropped = [], Counter()
    for p in proposals:
        item = row_item(p["item"])
        key = task.problem_key(item)
        why = "empty" if not item.question.strip() else "eval_overlap" if key in blocked else (
            "duplicate" if key in seen else None)
        if why:
            dropped[why] += 1
            continue
        seen.add(key)
        kept.append(p)
    return kept, dropped


def solution_rows(teacher: Teacher, proposals: Sequence[dict[str, Any]], st: StatConfig,
                  seed: int) -> list[dict[str, Any]]:
    items = [row_item(p["item"]) for p in proposals]
    solutions = teacher.solve(items, n=st.solutions_per_question, seed=seed)
    return [{"id": it.id, "solutions": list(ss)} for it, ss in zip(items, solutions, strict=True)]


def agreeing(task: Task, items: Sequence[Item], texts: Sequence[Sequence[str | None]],
             pool: ScorePool) -> list[list[int]]:
    """For each question, the indices of its agreeing solutions (see the module docstring)."""
    known = [q for q, it in enumerate(items) if task.checkable(it)]
    unknown = [q for q, it in enumerate(items) if not task.checkable(it)]
    out: dict[int, list[int]] = {q: [] for q in known}
    jobs = [(q, j) for q in known for j, t in enumerate(texts[q]) if t is not None]
    scores = pool.score(task, [items[q] for q, _ in jobs], [texts[q][j] for q, j in jobs]) if jobs else []
    for (q, j), s in zip(jobs, scores, strict=True):
        if s >= 1:
            out[q].append(j)
    groups = largest_agreement(task, [items[q] for q in unknown],
                               [[task.extract(t) if t else None for t in texts[q]] for q in unknown], pool)
    out.update(zip(unknown, groups, strict=True))
    return [out[q] for q in range(len(items))]


def syn_rows(task: Task, proposals: Sequence[dict[str, Any]], solutions: Sequence[dict[str, Any]], pool: ScorePool,
             st: StatConfig, seed: int, prefix: str, num_pairs: int | None = None) -> tuple[list[dict], dict[str, float]]:
    """The SFT rows (agreeing solutions of kept questions, subsampled) and their statistics."""
    items = [row_item(p["item"]) for p in proposals]
    texts = [[task.tag_answer(s) for s in row["solutions"]] for row in solutions]
    groups = agreeing(task, items, texts, pool)
    rows, kept = [], Counter()
    for p, item, ts, group in zip(proposals, items, texts, groups, strict=True):
        if len(group) < st.min_agree:
            continue
        kept[p["skill"]] += 1
        for text in dict.fromkeys(ts[j] for j in group):
            rows.append(sft_row(task, item, text, skill=p["skill"], difficult_id=p["difficult_id"],
                                agreeing=len(group), source="stat_syn"))
    pool_size = len(rows)
    rows = subsample(rows, num_pairs or len(rows), seed, "syn")
    n_solutions = sum(len(r["solutions"]) for r in solutions)
    stats = {f"{prefix}/questions_solved": float(len(items)), f"{prefix}/solutions": float(n_solutions),
             f"{prefix}/solutions_unreadable": float(sum(t is None for ts in texts for t in ts)),
             f"{prefix}/questions_kept": float(sum(kept.values())),
             f"{prefix}/keep_rate": sum(kept.values()) / max(len(items), 1),
             f"{prefix}/rows_before_subsample": float(pool_size), f"{prefix}/rows": float(len(rows))}
    stats.update({f"{prefix}/questions_kept/{s}": float(c) for s, c in sorted(kept.items())})
    shares = Counter(r["skill"] for r in rows)
    stats.update({f"{prefix}/rows/share/{s}": c / max(len(rows), 1) for s, c in sorted(shares.items())})
    return rows, stats
