"""The subset stage: the questions of an eval variant that the BASE model finds difficult (STAT's MATHD).

STAT evaluates every method on MATHD, "the student's difficult subset of the 4k MATH test split" (§2.1): the base
student answers each test question once at T 0.1 and the PRM rule flags the difficult ones, exactly as its stage 1
does on the validation questions. So the subset depends on the base model only, and every row of a table (base,
SFT, GRPO) is scored on the same questions. The detectors are STAT's (`traces/difficulty.py`): the PRM of
the paper, ground truth, or answer consistency. The sampling engine is closed before a PRM loads, as in STAT's
stage 1, so the two never share a GPU.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from statistics import fmean

from skillexp.eval.config import SubsetInputs
from skillexp.generation.sampling import base_generator, sample
from skillexp.traces.difficulty import assess
from skillexp.runtime import Runtime
from skillexp.stages import Stage, register
from skillexp.utils.io import atomic_write_json, atomic_write_jsonl

log = logging.getLogger(__name__)
SUBSET_FILE = "subset.json"


def subset_stage(inputs: SubsetInputs, out_dir: Path, rt: Runtime) -> None:
    """Sample the base model once per question of the variant's split, judge each, and write `subset.json`
    ({"ids": [...], ...}) and the judged rows into `out_dir` (kept if a killed run wrote it)."""
    out, name = out_dir / SUBSET_FILE, inputs.variant
    if out.exists():
        return
    task = inputs.task.build(name=name, path=f"eval.variants.{name}")
    items = task.items(inputs.split)
    sub = inputs.subset
    gen = base_generator(inputs, rt.sample_cache)
    try:
        comps = sample(gen, [task.messages(it) for it in items], sub.samples, sub.sampling, inputs.seed)
    finally:
        gen.close()  # before a PRM loads
    samples = [{"id": it.id, "completions": [c.text for c in cs], "truncated": [c.truncated for c in cs]}
               for it, cs in zip(items, comps, strict=True)]
    with rt.scoring.pool() as pool:
        rows = assess(task, items, samples, sub.rule(), pool)
    atomic_write_jsonl(out_dir / "assessed.jsonl", [{**r, "question": it.question} for r, it in zip(rows, items)])
    ids = [r["id"] for r in rows if r["difficult"]]
    log.info("subset %s: %d of %d %s questions are difficult for the base model (%s; its accuracy %.3f)", name,
             len(ids), len(rows), inputs.split, sub.detector, fmean(r["accuracy"] for r in rows) if rows else 0.0)
    if not ids:
        raise ValueError(f"eval.variants.{name}.subset: the base model finds none of the {len(rows)} questions "
                         f"difficult ({sub.detector}), so the variant would have no questions: loosen the detector "
                         f"or drop the variant.")
    atomic_write_json(out, {"ids": ids, "questions": len(rows), "difficult": len(ids), "detector": sub.detector})


def read_subset(path: str | Path) -> set[str]:
    """The question ids a subset stage wrote."""
    return set(json.loads((Path(path) / SUBSET_FILE).read_text())["ids"])


register(Stage(SubsetInputs, subset_stage))
