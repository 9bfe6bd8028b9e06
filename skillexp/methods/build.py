"""The sft_data stage: dispatch on `method.name`, write the dataset (with provenance columns) and its statistics."""
from __future__ import annotations

import logging
from pathlib import Path

from skillexp.methods.config import BASELINES, STAT_SEL, STAT_SYN, SFTDataInputs
from skillexp.methods.reference import reference_rows
from skillexp.methods.stat.skills import subsample
from skillexp.generation.sampling import base_generator, sample
from skillexp.methods.star import star_rows
from skillexp.runtime import Runtime
from skillexp.stages import Stage, register
from skillexp.utils.io import atomic_write_json, atomic_write_jsonl

log = logging.getLogger(__name__)
SFT_DATA = "sft_data.jsonl"  # the stage's dataset, in its output dir


def sft_data_stage(inputs: SFTDataInputs, out_dir: Path, rt: Runtime) -> None:
    """The sft_data stage: write `out_dir/sft_data.jsonl` ({"messages": [...], provenance...} per row) and its
    statistics, or reuse the file if a killed run finished it."""
    path = out_dir / SFT_DATA
    if path.exists():
        log.info("SFT data already built: %s", path)
        return
    m = inputs
    task = inputs.task.build()
    items = task.items("train")[: m.num_questions]
    if m.method == "sft":
        rows, stats = reference_rows(task, items), {}
    elif m.method in (*STAT_SEL, *STAT_SYN):
        from skillexp.methods.stat.build import build_stat

        rows, stats = build_stat(inputs, task, items, out_dir, rt)
    elif m.method in BASELINES:
        from skillexp.methods.stat_baselines import build_baseline

        rows, stats = build_baseline(inputs, task, items, out_dir, rt)
    elif m.method in ("distill", "bolt"):
        from skillexp.methods.distill import build_distill

        rows, stats = build_distill(inputs, task, items, out_dir, rt)
    else:
        gen = base_generator(inputs, rt.sample_cache)
        try:
            with rt.scoring.pool() as pool:
                if m.method == "star":
                    comps = sample(gen, [task.messages(it) for it in items], m.samples_per_question, m.sampling,
                                   m.seed)
                    flat = pool.score(task, [it for it, cs in zip(items, comps) for _ in cs],
                                      [c.text for cs in comps for c in cs])
                    k = m.samples_per_question
                    scores = [flat[i * k:(i + 1) * k] for i in range(len(items))]
                    rows, stats = star_rows(task, items, comps, scores, keep_per_question=k)
                else:
                    from skillexp.methods.skillfactory.build import build_skillfactory

                    rows, stats = build_skillfactory(task, items, gen, pool, m, m.seed)
        finally:
            gen.close()
    if not rows and m.if_empty == "error":
        raise RuntimeError(f"method={m.method} produced no SFT rows from {len(items)} questions (stats: {stats}). "
                           "Read the rates: no correct samples means an easier task or more samples; no kept "
                           "reflections means a model that writes verdict tags, or a lenient task "
                           "(+task.lenient=true). method.if_empty=base skips SFT instead and goes on from the base "
                           "model.")
    if not rows:
        log.warning("method=%s produced no SFT rows from %d questions (%s); method.if_empty=base: SFT is skipped",
                    m.method, len(items), stats)
    if m.num_pairs is not None:  # the common size (STAT's builders cut their own rows to it already)
        stats[f"{m.method}/rows_before_size"] = float(len(rows))
        stats[f"{m.method}/rows_below_size"] = float(max(0, m.num_pairs - len(rows)))
        rows = subsample(rows, m.num_pairs, m.seed, m.method)
    stats = {**stats, f"{m.method}/rows": float(len(rows)), f"{m.method}/questions": float(len(items)),
             # rows of the task's table it left out, by reason (task=openthoughts; other tasks leave none out)
             **{f"task/rows_left_out/{why}": float(n) for why, n in sorted(getattr(task, "dropped", {}).items())}}
    atomic_write_jsonl(path, rows)
    atomic_write_json(out_dir / "sft_data_stats.json", stats)
    rt.tracker.log(stats)
    log.info("method=%s: %d SFT rows from %d questions -> %s", m.method, len(rows), len(items), path)


def is_empty(out_dir: Path) -> bool:
    """Whether the stage wrote no rows (method.if_empty=base let the build through): SFT is skipped."""
    return (Path(out_dir) / SFT_DATA).stat().st_size == 0


register(Stage(SFTDataInputs, sft_data_stage, output=SFT_DATA))
