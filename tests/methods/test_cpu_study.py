"""The main job's recipe (experiment=cpu_study) as the README runs it: a multirun from the experiment file alone,
jobs one after the other in one process (Hydra's basic launcher), vLLM sampling, ending with the report.

The memorised tiny student stands in for SmolLM2 and the budgets are cut, so this takes a minute, not the half
hour of the real study; what it checks is the recipe and the in-process sweep (every job starts and frees its
own engines and process groups), not the numbers."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import subprocess_env
from tests.test_main import ROOT


@pytest.mark.slow
@pytest.mark.vllm
def test_the_cpu_study_recipe_is_a_multirun_that_ends_with_its_report(memorizer: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "study"
    proc = subprocess.run(
        [sys.executable, "-m", "skillexp", "experiment=cpu_study", f"hydra.sweep.dir={sweep}",
         "method=none,sft", "model=hf", f"model.path={memorizer}", "model.name=memorizer",
         "model.dtype=float32", "model.max_model_len=1024", "method.sft.max_steps=2", "rl.steps=1",
         "rl.prompts_per_step=2", "rl.group_size=2", "rl.mini_batch_prompts=2", "rl.sampling.max_tokens=16",
         "trainer.micro_batch_size=4", "trainer.precision=fp32", "eval.num_items=2", "eval.sampling.max_tokens=16",
         "eval.score_workers=0", "generation.cpu_kv_cache_gib=1", f"paths.stage_cache_dir={tmp_path / 'cache'}"],
        cwd=ROOT, env=subprocess_env(WANDB_MODE="offline"), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(runs) == 4  # method x seed from the experiment file's sweeper params
    # the basic launcher: every job ran in the launching process
    assert len({json.loads((r / "job.json").read_text())["pid"] for r in runs}) == 1
    # one W&B group for this sweep, named after it
    groups = {OmegaConf.load(r / "config.yaml").logger.group for r in runs}
    assert groups == {f"cpu_study-{sweep.name}"}
    # the report was written by the multirun's end callback, with both seeds in each cell
    rows = {r["row"]: r for r in csv.DictReader(open(sweep / "report" / "results.csv"))}
    assert {"none → grpo_cpu", "sft → grpo_cpu", "none (pre-RL)", "sft (pre-RL)"} <= set(rows)
    assert all(r["n"] == "2" for r in rows.values()), rows
    assert (sweep / "report" / "results.md").read_text().count("countdown_2") >= 1
