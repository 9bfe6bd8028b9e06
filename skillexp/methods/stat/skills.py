"""The skill catalogue and the Skill-Map (STAT §2.0), and the stage's resumable files.

The Skill-Map is the teacher's labels of the training questions (up to `max_skills` catalogue skills each, from
the question's subject list), inverted to skill -> questions. Labelling is the costliest teacher step on a real
dataset, so its result is a file in the stage dir that a resumed run reads back instead of asking again.
"""
from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from skillexp.tasks.base import Item, Task
from skillexp.teachers.base import SkillCatalogue, Teacher
from skillexp.utils.io import atomic_write_jsonl, read_jsonl

log = logging.getLogger(__name__)


def cached(path: Path, compute: Callable[[], list[dict[str, Any]]],
           teacher: Teacher | None = None) -> list[dict[str, Any]]:
    """The rows of a finished step from `path`, or computed now and written atomically (a killed run leaves either
    the whole file or none). A step in which some of `teacher`'s requests failed is returned but not written: a
    failed request is not an answer, so a resumed build asks for exactly those again (the rest are in the
    teacher's cache)."""
    if path.exists():
        log.info("STAT: reusing %s", path)
        return read_jsonl(path)
    before = teacher.failed_requests if teacher is not None else 0
    rows = compute()
    failed = teacher.failed_requests - before if teacher is not None else 0
    if failed:
        log.warning("STAT: %d teacher requests of %s got no answer (tolerated by teacher.max_failed_fraction); "
                    "the step is used without them and not saved, so a resumed build asks for them again",
                    failed, path.name)
    else:
        atomic_write_jsonl(path, rows)
    return rows


def catalogue_source(path: str | None, task: Task, root_dir: str) -> Path:
    """The catalogue file `method.stat.catalogue` names (relative to the directory the command ran in), else the
    task's shipped one (`Task.skill_catalogue`)."""
    if path is not None:
        return Path(path) if Path(path).is_absolute() else Path(root_dir) / path
    if task.skill_catalogue is not None:
        return task.skill_catalogue
    raise ValueError(f"no skill catalogue ships for task {task.name!r}: set method.stat.catalogue to a JSON file "
                     "{\"subjects\": {subject: [skill, ...]}} (see skillexp/data/skills/).")


def item_row(item: Item) -> dict[str, Any]:
    return {"id": item.id, "question": item.question, "answer": item.answer, "meta": item.meta}


def row_item(row: dict[str, Any]) -> Item:
    return Item(id=row["id"], question=row["question"], answer=row["answer"], meta=row["meta"])


def label_rows(teacher: Teacher, items: Sequence[Item], catalogue: SkillCatalogue,
               max_skills: int) -> list[dict[str, Any]]:
    labels = teacher.label_skills(items, catalogue, max_skills)
    return [{"id": it.id, "skills": skills[:max_skills]} for it, skills in zip(items, labels, strict=True)]


class SkillMap:
    """skill -> training questions that need it, in train-split order."""

    def __init__(self, items: Sequence[Item], rows: list[dict[str, Any]]):
        by_id = {it.id: it for it in items}
        missing = [r["id"] for r in rows if r["id"] not in by_id]
        if missing:
            raise ValueError(f"the saved skill map names {len(missing)} questions the train split lacks (e.g. "
                             f"{missing[0]}): the task changed since; delete the stage dir to relabel.")
        self.labels = {r["id"]: list(r["skills"]) for r in rows}
        self.questions: dict[str, list[Item]] = {}
        for r in rows:
            for skill in r["skills"]:
                self.questions.setdefault(skill, []).append(by_id[r["id"]])

    def frequencies(self) -> Counter[str]:
        return Counter({s: len(q) for s, q in self.questions.items()})

    def stats(self, prefix: str) -> dict[str, float]:
        n = max(len(self.labels), 1)
        out = {f"{prefix}/skill_map/questions": float(len(self.labels)),
               f"{prefix}/skill_map/unlabelled": float(sum(not s for s in self.labels.values())),
               f"{prefix}/skill_map/skills_per_question": sum(map(len, self.labels.values())) / n}
        out.update({f"{prefix}/skill_map/share/{s}": c / n for s, c in sorted(self.frequencies().items())})
        return out


def skill_shares(skill_map: SkillMap, question_ids: Sequence[str], prefix: str) -> dict[str, float]:
    """The share of `question_ids` (SFT rows) labelled with each skill: set it against the skill map's own shares
    to see how much the data stresses the profiled skills."""
    counts = Counter(s for q in question_ids for s in skill_map.labels.get(q, ()))
    n = max(len(question_ids), 1)
    return {f"{prefix}/share/{s}": c / n for s, c in sorted(counts.items())}


def subsample(rows: list[dict[str, Any]], target: int, seed: int, tag: str) -> list[dict[str, Any]]:
    """A seeded random `target` of the rows in their original order (all of them when there are fewer: the data
    is never padded by repetition)."""
    if len(rows) <= target:
        return rows
    keep = set(random.Random(f"stat-{tag}-subsample-{seed}").sample(range(len(rows)), target))
    return [r for i, r in enumerate(rows) if i in keep]


def sft_row(task: Task, item: Item, answer: str, **provenance: Any) -> dict[str, Any]:
    return {"messages": task.messages(item) + [{"role": "assistant", "content": answer}], "question_id": item.id,
            **provenance}
