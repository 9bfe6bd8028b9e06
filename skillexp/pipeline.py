"""Stage order, stage keys and artifacts. Only this module and `__main__` know which stage follows which.

Each stage is a function of (config, inputs) -> a directory. Its key (skillexp/stage_cache.py) hashes the part of
the config it reads and the keys of the stages it consumes, so a sweep computes a shared stage once (the SFT data
of one method for every RL variant, a base model's eval for every method=none run) and a changed eval setting
reuses the trained models. A stage that was killed resumes from its checkpoints when the same key runs again.
"""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from skillexp.config import RunConfig
from skillexp.eval.stage import format_table, run_eval
from skillexp.generation.shared import SharedEngine
from skillexp.methods.build import build_sft_data
from skillexp.models import resolve_model_dir
from skillexp.rl.grpo import STEP_LOG, replayed_steps, run_grpo
from skillexp.stage_cache import StageCache, StageSpec, digest
from skillexp.tracking import Tracker
from skillexp.training.launch import sft_stage
from skillexp.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
# Bump a stage's version when its code changes what it writes, so old cached outputs are not reused.
STAGE_VERSIONS = {"sft_data": 1, "sft": 1, "rl": 1, "eval": 1}
# Keys that change how a stage runs (logging, workers, checkpoint cadence), not what it computes.
NOT_KEYED = {"generation": {"show_progress"}, "eval": {"log_samples", "score_workers", "score_timeout_s"},
             "trainer": {"save_every_steps", "keep_checkpoints", "keep_final_checkpoint", "log_every_steps", "name"},
             "rl": {"save_every_steps", "sample_table_every_steps", "name"}}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stages(run: RunConfig) -> list[str]:
    """The stages this config runs, in order."""
    out = []
    if run.method.name != "none":
        out += ["sft_data", "sft"]
    if run.rl.name != "none":
        out.append("rl")
    return out + ["eval"]


def _keyed(config: dict[str, Any], group: str) -> dict[str, Any]:
    return {k: v for k, v in config[group].items() if k not in NOT_KEYED.get(group, ())}


def stage_specs(run: RunConfig) -> dict[str, StageSpec]:
    """The key of every stage `run` runs (and "pre_rl" for the eval before RL), from the config alone."""
    c = asdict(run)
    model, gen, seed = c["model"], _keyed(c, "generation"), run.seed
    trainer = _keyed(c, "trainer")
    specs: dict[str, StageSpec] = {}
    upstream = digest({"base_model": model})  # the key of the model the next stage starts from
    if "sft" in stages(run):
        method = {k: v for k, v in c["method"].items() if k != "sft"}
        teacher = c["teacher"] if run.method.name.startswith("stat") else None
        specs["sft_data"] = StageSpec("sft_data", {
            "version": STAGE_VERSIONS["sft_data"], "model": model, "task": c["task"], "method": method,
            "teacher": teacher, "generation": gen, "seed": seed}, (upstream,))
        specs["sft"] = StageSpec("sft", {"version": STAGE_VERSIONS["sft"], "model": model, "sft": c["method"]["sft"],
                                         "trainer": trainer, "seed": seed}, (upstream, specs["sft_data"].key))
        upstream = specs["sft"].key
    evaluation = {"version": STAGE_VERSIONS["eval"], "model": model, "eval": _keyed(c, "eval"), "generation": gen,
                  "seed": seed}
    if "rl" in stages(run):
        specs["pre_rl"] = StageSpec("eval", evaluation, (upstream,))
        specs["rl"] = StageSpec("rl", {"version": STAGE_VERSIONS["rl"], "model": model, "task": c["task"],
                                       "rl": _keyed(c, "rl"), "trainer": trainer, "generation": gen, "seed": seed},
                                (upstream,))
        upstream = specs["rl"].key
    specs["eval"] = StageSpec("eval", evaluation, (upstream,))
    return specs


def evaluate(run: RunConfig, engine: SharedEngine, model_dir: Path, out_dir: Path, tracker: Tracker,
             prefix: str = "") -> None:
    """The eval suite on `model_dir` into `out_dir` (kept if a killed run already finished it there)."""
    if (out_dir / "eval_metrics.json").exists():
        log.info("eval already done in %s; reusing it", out_dir)
        return
    run_eval(run, engine.load(model_dir), out_dir, tracker, prefix=prefix)


def eval_stage(run: RunConfig, cache: StageCache, spec: StageSpec, engine: SharedEngine, model_dir: Path,
               tracker: Tracker, prefix: str = "") -> dict[str, float]:
    """Metrics of the eval stage `spec`, computed or reused; reused metrics are logged again so that every run's
    metrics.jsonl and W&B run hold its own numbers."""
    out = cache.run(spec, lambda o: evaluate(run, engine, model_dir, o, tracker, prefix),
                    prefix.rstrip("/") or "eval")
    metrics = {f"{prefix}{k}": v for k, v in json.loads((out / "eval_metrics.json").read_text()).items()}
    if spec.key not in cache.built:
        tracker.log(metrics)
    return metrics


def rl_stage(run: RunConfig, cache: StageCache, spec: StageSpec, engine: SharedEngine, model_dir: Path,
             tracker: Tracker) -> Path:
    """The GRPO stage; a reused one's per-step metrics are logged again, so every run shows its reward curve."""
    out = cache.run(spec, lambda o: run_grpo(run, model_dir, o, tracker, engine))
    if spec.key not in cache.built and (out / STEP_LOG).exists():
        for step, metrics in sorted(replayed_steps(out / STEP_LOG).items()):
            tracker.log(metrics, step=step)
    return out / "model"


def run_pipeline(run: RunConfig, run_dir: Path) -> dict[str, float]:
    """Run every stage of `run`, with its outputs in the stage cache (linked from `run_dir`) or in `run_dir`;
    returns the final metrics, also written to summary.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = asdict(run)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
    seed_everything(run.seed)
    specs = stage_specs(run)
    # where this run lives (a requeued Slurm job appears as a new attempt with the same run dir)
    atomic_write_json(run_dir / "job.json", {"pid": os.getpid(), "host": socket.gethostname(), "argv": sys.argv,
                                             "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                                             "restarts": int(os.environ.get("SLURM_RESTART_COUNT", 0)),
                                             "started": time.time()})
    atomic_write_json(run_dir / "stages.json", {name: {"stage": s.name, "key": s.key} for name, s in specs.items()})
    log.info("stages: %s; run dir: %s", " -> ".join(stages(run)), run_dir)

    cache_root = run.paths.stage_cache_dir
    cache = StageCache(Path(cache_root) if cache_root else None, run_dir)
    model_dir = resolve_model_dir(run.model, Path(run.paths.cache_dir))
    tracker = Tracker(run.logger, run_dir, config)
    try:
        summary: dict[str, float] = {}
        if "sft" in stages(run):
            data = cache.run(specs["sft_data"], lambda out: build_sft_data(run, model_dir, out, tracker))
            if (data / "sft_data.jsonl").stat().st_size == 0:  # method.if_empty=base let an empty build through
                log.warning("no SFT data: SFT skipped, the run goes on from the base model (sft/skipped=1)")
                summary["sft/skipped"] = 1.0
                tracker.log(summary)
            else:
                base = model_dir
                out = cache.run(specs["sft"], lambda out: sft_stage(run, data / "sft_data.jsonl", base, out,
                                                                     run_dir, tracker))
                model_dir = out / "model"
        # pre-RL eval, GRPO and the final eval sample from one engine (started once, weights swapped in)
        with SharedEngine(run.model, run.generation, run.seed) as engine:
            if "rl" in stages(run):
                start = model_dir
                summary.update(eval_stage(run, cache, specs["pre_rl"], engine, start, tracker, prefix="pre_rl/"))
                log.info("before RL:\n%s", format_table(summary, "pre_rl/"))
                model_dir = rl_stage(run, cache, specs["rl"], engine, start, tracker)
            summary.update(eval_stage(run, cache, specs["eval"], engine, model_dir, tracker))
        tracker.set_summary(summary)
        atomic_write_json(run_dir / "summary.json", summary)
        return summary
    finally:
        tracker.finish()
