"""STAT-Sel (paper §2.3, Algorithm 1): re-weight the training questions toward the profiled skills.

For each (difficult question, missing skill) pair, `k` questions are drawn uniformly without replacement from the
skill map's list for that skill (all of them when it has fewer), so skill s gets about k·n(s) draws: selection is
proportional to how often the skill is missing. k = 5 follows App. B.2 and the released README (Algorithm 1 says 3).
`duplicates: keep` (default) keeps every draw, so a question drawn m times weighs m times; `remove` keeps each
question once (the paper's "~4k unique questions" in 9.5k rows suggests repeats and several answers per question).

Answers (`answers`): `teacher` asks for `answers_per_question` solutions of each distinct question and keeps the
distinct ones the task's checker accepts against the gold answer. The paper has the teacher rewrite the reference
three times; a verified solution needs no rewrite prompt and cannot teach a wrong answer. A question without an
accepted solution keeps its reference solution (counted). `reference` uses the reference solutions. Each answer of
each kept draw is a row; the rows are subsampled to `method.num_pairs`.
"""
from __future__ import annotations

import random
from collections import Counter
from typing import Any, Sequence

from skillexp.methods.config import StatConfig
from skillexp.methods.stat.skills import SkillMap, sft_row, skill_shares, subsample
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool
from skillexp.teachers.base import Teacher


def missing_pairs(judgements: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(difficult question id, missing skill) for every skill of every judgement."""
    return [(r["id"], s) for r in judgements for s in r["skills"]]


def draw(pairs: Sequence[tuple[str, str]], skill_map: SkillMap, k: int, seed: int) -> list[dict[str, Any]]:
    """k training questions per pair, uniformly from the skill's list."""
    rng = random.Random(f"stat-sel-{seed}")
    out = []
    for difficult_id, skill in pairs:
        candidates = skill_map.questions.get(skill, [])
        for item in rng.sample(candidates, min(k, len(candidates))):
            out.append({"id": item.id, "skill": skill, "difficult_id": difficult_id})
    return out


def _first_draws(draws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for d in draws:
        if d["id"] not in seen:
            seen.add(d["id"])
            out.append(d)
    return out


def answer_rows(task: Task, teacher: Teacher, items: Sequence[Item], st: StatConfig, pool: ScorePool,
                seed: int) -> list[dict[str, Any]]:
    """The answers of each distinct drawn question: verified teacher solutions, else the reference."""
    if st.answers == "reference":
        return [{"id": it.id, "answers": [task.reference_solution(it)], "source": "reference"} for it in items]
    solutions = teacher.solve(items, n=st.answers_per_question, seed=seed)
    tagged = [list(dict.fromkeys(t for t in map(task.tag_answer, ss) if t)) for ss in solutions]
    flat = pool.score(task, [it for it, ts in zip(items, tagged) for _ in ts], [t for ts in tagged for t in ts])
    out, start = [], 0
    for item, texts in zip(items, tagged, strict=True):
        ok = [t for t, s in zip(texts, flat[start:start + len(texts)]) if s >= 1]
        start += len(texts)
        out.append({"id": item.id, "answers": ok or [task.reference_solution(item)],
                    "source": "teacher" if ok else "reference_fallback", "offered": len(texts), "accepted": len(ok)})
    return out


def sel_rows(task: Task, draws: Sequence[dict[str, Any]], answers: Sequence[dict[str, Any]], skill_map: SkillMap,
             items: dict[str, Item], st: StatConfig, seed: int, prefix: str,
             num_pairs: int | None = None) -> tuple[list[dict], dict[str, float]]:
    """The SFT rows (one per answer per kept draw, subsampled) and their statistics."""
    kept = _first_draws(draws) if st.duplicates == "remove" else list(draws)
    by_id = {a["id"]: a for a in answers}
    rows = [sft_row(task, items[d["id"]], text, skill=d["skill"], difficult_id=d["difficult_id"],
                    answer_source=by_id[d["id"]]["source"], source="stat_sel")
            for d in kept for text in by_id[d["id"]]["answers"]]
    pool_size = len(rows)
    rows = subsample(rows, num_pairs or len(rows), seed, "sel")
    offered = sum(a.get("offered", 0) for a in answers)
    stats = {f"{prefix}/draws": float(len(draws)), f"{prefix}/draws_kept": float(len(kept)),
             f"{prefix}/unique_questions": float(len({d['id'] for d in draws})),
             f"{prefix}/answers_offered": float(offered),
             f"{prefix}/answer_acceptance": sum(a.get("accepted", 0) for a in answers) / max(offered, 1),
             f"{prefix}/answers_reference_fallback": float(sum(a["source"] == "reference_fallback" for a in answers)),
             f"{prefix}/rows_before_subsample": float(pool_size), f"{prefix}/rows": float(len(rows))}
    stats.update({f"{prefix}/draws/{s}": float(c) for s, c in sorted(Counter(d["skill"] for d in draws).items())})
    stats.update(skill_shares(skill_map, [r["question_id"] for r in rows], f"{prefix}/rows"))
    return rows, stats
