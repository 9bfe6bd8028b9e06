"""STAT's stage 1 around the detectors of `traces/difficulty.py`: the student's samples on the validation questions,
the difficult ones kept for profiling (when more than `num_difficult` are difficult a seeded random subset: the paper
filters 500 and does not say how), and how the flags compare with ground truth.
"""
from __future__ import annotations

from statistics import fmean
from typing import Any, Sequence

from skillexp.generation.sampling import base_generator, sample
from skillexp.methods.config import SFTDataInputs
from skillexp.methods.stat.skills import subsample
from skillexp.runtime import Runtime
from skillexp.tasks.base import Item, Task


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
