"""Stage order and artifacts. Only this module and `__main__` know which stage follows which.

Stages read the artifacts of the one before (an HF model directory) and write their own into the run dir.
A stage whose output file already exists in the run dir is skipped, so re-running a command with the same
`hydra.run.dir` resumes instead of recomputing.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from skillexp.config import RunConfig
from skillexp.eval.stage import run_eval
from skillexp.generation import build_generator
from skillexp.methods.build import build_sft_data
from skillexp.models import resolve_model_dir
from skillexp.rl.grpo import run_grpo
from skillexp.tracking import Tracker
from skillexp.training.launch import sft_stage
from skillexp.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


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


def evaluate(run: RunConfig, model_dir: Path, out_dir: Path, tracker: Tracker, prefix: str = "") -> dict[str, float]:
    """The eval suite on `model_dir`, or the metrics a previous run of this stage left in `out_dir`."""
    done = out_dir / f"{prefix}eval_metrics.json"
    if done.exists():
        log.info("eval already done in %s; reusing it", done)
        return json.loads(done.read_text())
    generator = build_generator(model_dir, run.model, run.generation, seed=run.seed)
    try:
        return run_eval(run, generator, out_dir, tracker, prefix=prefix)
    finally:
        generator.close()


def run_pipeline(run: RunConfig, run_dir: Path) -> dict[str, float]:
    """Run every stage of `run` in `run_dir`; returns the final metrics, also written to summary.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = asdict(run)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
    seed_everything(run.seed)
    log.info("stages: %s; run dir: %s", " -> ".join(stages(run)), run_dir)

    model_dir = resolve_model_dir(run.model, Path(run.paths.cache_dir))
    tracker = Tracker(run.logger, run_dir, config)
    try:
        if "sft" in stages(run):
            data = build_sft_data(run, model_dir, run_dir / "sft_data", tracker)
            model_dir = sft_stage(run, data, model_dir, run_dir, tracker)
        summary: dict[str, float] = {}
        if "rl" in stages(run):
            summary.update(evaluate(run, model_dir, run_dir / "pre_rl", tracker, prefix="pre_rl/"))
            model_dir = run_grpo(run, model_dir, run_dir / "rl", tracker)
        summary.update(evaluate(run, model_dir, run_dir, tracker))
        tracker.set_summary(summary)
        atomic_write_json(run_dir / "summary.json", summary)
        return summary
    finally:
        tracker.finish()
