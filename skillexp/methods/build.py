"""The sft_data stage: dispatch on `method.name`, write the dataset (with provenance columns) and its statistics."""
from __future__ import annotations

import logging
from pathlib import Path

from skillexp.config import RunConfig, task_spec
from skillexp.methods.reference import reference_rows
from skillexp.methods.sampling import base_generator, sample
from skillexp.methods.star import star_rows
from skillexp.tasks import build_task
from skillexp.tasks.scoring import ScorePool
from skillexp.tracking import Tracker
from skillexp.utils.io import atomic_write_json, atomic_write_jsonl

log = logging.getLogger(__name__)


def build_sft_data(run: RunConfig, model_dir: Path, out_dir: Path, tracker: Tracker) -> Path:
    """Write `out_dir/sft_data.jsonl` ({"messages": [...], provenance...} per row), or reuse it if present."""
    path = out_dir / "sft_data.jsonl"
    if path.exists():
        log.info("SFT data already built: %s", path)
        return path
    m = run.method
    kind, params = task_spec(run.task, "task")
    task = build_task(kind, params)
    items = task.items("train")[: m.num_questions]
    if m.name == "sft":
        rows, stats = reference_rows(task, items), {}
    elif m.name in ("stat_sel", "stat_syn"):
        from skillexp.methods.stat.build import build_stat
        from skillexp.teachers import build_teacher

        rows, stats = build_stat(run, task, items, model_dir, out_dir, tracker,
                                 lambda: build_teacher(run.teacher, run, task))
    else:
        gen = base_generator(run, model_dir)
        try:
            with ScorePool(workers=run.eval.score_workers, timeout_s=run.eval.score_timeout_s) as pool:
                if m.name == "star":
                    comps = sample(gen, [task.messages(it) for it in items], m.samples_per_question, m.sampling,
                                   run.seed)
                    flat = pool.score(task, [it for it, cs in zip(items, comps) for _ in cs],
                                      [c.text for cs in comps for c in cs])
                    k = m.samples_per_question
                    scores = [flat[i * k:(i + 1) * k] for i in range(len(items))]
                    rows, stats = star_rows(task, items, comps, scores, keep_per_question=k)
                else:
                    from skillexp.methods.skillfactory.build import build_skillfactory

                    rows, stats = build_skillfactory(task, items, gen, pool, m, run.seed)
        finally:
            gen.close()
    if not rows and m.if_empty == "error":
        raise RuntimeError(f"method={m.name} produced no SFT rows from {len(items)} questions (stats: {stats}). "
                           "Read the rates: no correct samples means an easier task or more samples; no kept reflections "
                           "means a model that writes verdict tags, or a lenient task (+task.lenient=true). "
                           "method.if_empty=base skips SFT instead and goes on from the base model.")
    if not rows:
        log.warning("method=%s produced no SFT rows from %d questions (%s); method.if_empty=base: SFT is skipped",
                    m.name, len(items), stats)
    stats = {**stats, f"{m.name}/rows": float(len(rows)), f"{m.name}/questions": float(len(items))}
    atomic_write_jsonl(path, rows)
    atomic_write_json(out_dir / "sft_data_stats.json", stats)
    tracker.log(stats)
    log.info("method=%s: %d SFT rows from %d questions -> %s", m.name, len(rows), len(items), path)
    return path
