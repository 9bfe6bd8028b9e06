"""STAT's stage 1 around the detectors of `traces/difficulty.py`: the student's samples on the validation questions
(a continual method's: another task's, `method.continual`), the difficult ones kept for profiling (when more than
`num_difficult` are difficult a seeded random subset: the paper filters 500 and does not say how), and how the flags
compare with ground truth. STAT-Sel, STAT-Syn and the embedding rows run it alike (`find_difficult`).
"""
from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Any, Sequence

from skillexp.generation.sampling import base_generator, sample
from skillexp.methods.config import SFTDataInputs
from skillexp.methods.stat.skills import cached, subsample
from skillexp.runtime import Runtime
from skillexp.tasks.base import Item, Task
from skillexp.traces.difficulty import assess
from skillexp.utils.schema import ConfigError


def profiled(inputs: SFTDataInputs, task: Task) -> tuple[Task, list[Item]]:
    """The task and questions the student's missing skills are profiled on: the task's val split, or a continual
    method's profile task (`method.continual`), at most `method.stat.num_val_questions` of them."""
    assert inputs.stat is not None
    if inputs.profile is not None:
        task = inputs.profile.build(name="profile", path="method.continual.profile")
    return task, task.items(inputs.profile_split or "val")[: inputs.stat.num_val_questions]


def find_difficult(inputs: SFTDataInputs, task: Task, rt: Runtime, work: Path,
                   pool: Any) -> tuple[list[Item], list[dict[str, Any]], dict[str, float]]:
    """Stage 1: the student answers the questions it is profiled on (`profiled`) and the difficulty rule judges
    them, each step's result a file under `work` (`student_samples.jsonl`, `difficulty.jsonl`) reused on resume.
    Returns those questions, the difficult rows picked (id, the solution to judge, the evidence) and the stats."""
    st, prefix = inputs.stat, inputs.method
    assert st is not None
    asked, val = profiled(inputs, task)
    if not val:
        where = f"method.continual.profile's {inputs.profile_split}" if inputs.profile is not None else "the task's val"
        raise ConfigError(f"method={prefix} needs questions to profile the student on (stage 1: {where} split), "
                          "and there are none: raise that split's size (num_val).")
    samples = cached(work / "student_samples.jsonl", lambda: student_samples(inputs, rt, asked, val))
    assessed = cached(work / "difficulty.jsonl", lambda: assess(asked, val, samples, st.rule(), pool))
    difficult = pick_difficult(assessed, st.num_difficult, inputs.seed)
    stats = difficulty_stats(assessed, len(difficult), prefix)
    if not difficult:
        raise RuntimeError(f"method={prefix}: the student found none of {len(val)} questions difficult "
                           f"(difficulty={st.difficulty}); there is nothing to target. Stats: {stats}")
    return val, difficult, stats


def student_samples(inputs: SFTDataInputs, rt: Runtime, task: Task, items: Sequence[Item]) -> list[dict[str, Any]]:
    """The student's answers to the validation questions (the generator is closed before any teacher starts)."""
    gen = base_generator(inputs, rt.sample_cache)
    try:
        comps = sample(gen, [task.messages(it) for it in items], inputs.samples_per_question, inputs.sampling,
                       inputs.seed)
    finally:
        gen.close()
    return [{"id": it.id, "completions": [c.text for c in cs], "truncated": [c.truncated for c in cs]}
            for it, cs in zip(items, comps, strict=True)]


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
