"""Stage 2 of STAT: the Missing-Skill-Profile.

The teacher reads each difficult question with the student's solution and names the catalogue skills the student
should improve (paper §2.2, App. C.3.2). Choices (spec §7.4): the skills are kept whatever the teacher's verdict,
because stage 1 already decided the question is difficult (the verdict is logged as `judged_correct`, a measure of
teacher-detector agreement); at most `max_missing_skills` are kept, in the teacher's order (the paper observes 2-3).
The profile is the count of difficult questions missing each skill, n(s), which STAT-Sel turns into k·n(s) draws.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from skillexp.tasks.base import Item
from skillexp.teachers.base import SkillCatalogue, Teacher
from skillexp.tracking import Tracker
from skillexp.utils.io import atomic_write_json

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 2_000
CHART_SKILLS = 20


def judge_rows(teacher: Teacher, items: Sequence[Item], solutions: Sequence[str], catalogue: SkillCatalogue,
               max_missing: int) -> list[dict[str, Any]]:
    judgements = teacher.judge(items, solutions, catalogue)
    return [{"id": it.id, "correct": j.correct, "skills": j.skills[:max_missing], "reason": j.reason[:MAX_REASON_CHARS]}
            for it, j in zip(items, judgements, strict=True)]


def profile(rows: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """(skill, number of difficult questions missing it), most frequent first, ties by name."""
    counts = Counter(s for r in rows for s in r["skills"])
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def profile_stats(rows: Sequence[dict[str, Any]], freq: Sequence[tuple[str, int]], prefix: str) -> dict[str, float]:
    n = max(len(rows), 1)
    out = {f"{prefix}/profile/judged": float(len(rows)),
           f"{prefix}/profile/judged_correct": sum(r["correct"] is True for r in rows) / n,
           f"{prefix}/profile/verdict_unreadable": sum(r["correct"] is None for r in rows) / n,
           f"{prefix}/profile/no_missing_skill": sum(not r["skills"] for r in rows) / n,
           f"{prefix}/profile/skills_per_question": sum(len(r["skills"]) for r in rows) / n}
    out.update({f"{prefix}/profile/count/{s}": float(c) for s, c in freq})
    return out


def plot_profile(freq: Sequence[tuple[str, int]], questions: int, path: Path, title: str) -> None:
    """A horizontal bar chart of the most frequent missing skills (the paper's Figures 2 and 6)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in worker threads
    import matplotlib.pyplot as plt

    top = list(freq[:CHART_SKILLS])[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(top), 1) + 1.2))
    try:
        ax.barh([s for s, _ in top], [c for _, c in top], color="#4477aa")
        ax.set_xlabel(f"difficult questions missing the skill (of {questions})")
        ax.set_title(title)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=120)
        tmp.replace(path)
    finally:
        plt.close(fig)


def save_profile(freq: Sequence[tuple[str, int]], questions: int, work: Path, tracker: Tracker, prefix: str) -> None:
    """The profile as JSON and a chart in the stage dir, and as a table and an image in W&B."""
    atomic_write_json(work / "missing_skill_profile.json", {"difficult_questions": questions, "counts": dict(freq)})
    chart = work / "missing_skill_profile.png"
    plot_profile(freq, questions, chart, f"{prefix}: Missing-Skill-Profile")
    key = f"{prefix}/missing_skill_profile"
    tracker.log_table(key, ["skill", "difficult_questions", "share"], [[s, c, c / max(questions, 1)] for s, c in freq])
    tracker.log_image(f"{key}_chart", chart)
    log.info("Missing-Skill-Profile over %d difficult questions: %s", questions, list(freq[:10]))
