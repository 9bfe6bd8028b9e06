"""A whole study in miniature: every method -> GRPO -> eval as submitit_local jobs of one Hydra multirun, on the
memorised tiny student, then `skillexp report` over the sweep."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.methods.conftest import TASK
from tests.test_main import ROOT
from tests.test_preemption import _env

METHODS = ("none", "sft", "star", "skillfactory", "stat_sel", "stat_syn")


@pytest.mark.slow
@pytest.mark.long
def test_a_submitit_local_multirun_over_all_methods_reports(memorizer: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    task = [f"+task.{k}={v}" for k, v in TASK.items() if k not in ("kind", "num_numbers")]
    proc = subprocess.run(
        [sys.executable, "-m", "skillexp", "-m", "hydra/launcher=local", f"hydra.sweep.dir={sweep}",
         f"method={','.join(METHODS)}", "rl=grpo_cpu", "teacher=oracle", "logger.group=study",
         "model=hf", f"model.path={memorizer}", "model.name=memorizer", "model.dtype=float32", "generation=hf",
         *task, "method.num_questions=8", "method.samples_per_question=4", "method.sampling.max_tokens=40",
         "method.skillfactory.reflections_per_attempt=2", "method.skillfactory.reflection_max_tokens=40",
         "method.skillfactory.min_attempts=3", "method.stat.num_difficult=4", "method.num_pairs=16",
         "method.sft.max_steps=2", "method.sft.max_length=1024", "trainer.micro_batch_size=4", "trainer.grad_accum=1",
         "rl.steps=2", "rl.prompts_per_step=2", "rl.group_size=2", "rl.mini_batch_prompts=2",
         "rl.sampling.max_tokens=16", "rl.val_every_steps=0", "eval=countdown_cpu", "eval.num_items=2", "eval.k=1",
         "eval.pass_k=[1]", "eval.greedy=false", "eval.sampling.max_tokens=16", "scoring.workers=0",
         f"paths.stage_cache_dir={tmp_path / 'cache'}"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(list(sweep.glob("*/summary.json"))) == len(METHODS)
    report = subprocess.run([sys.executable, "-m", "skillexp", "report", str(sweep)], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    rows = {r["row"] for r in csv.DictReader(open(sweep / "report" / "results.csv"))}
    for method in METHODS:
        assert f"{method} → grpo_cpu" in rows, (method, rows)
        assert f"{method} (pre-RL)" in rows, (method, rows)
    assert (sweep / "report" / "rewards.png").stat().st_size > 0
