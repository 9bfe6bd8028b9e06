"""DeepSpeed ZeRO-2 and ZeRO-3 with two processes on the CPU (gloo): SFT runs, checkpoints, exports a model
that plain transformers reloads, and the validation loss falls."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from skillexp.utils.io import read_jsonl
from tests.conftest import ROOT, subprocess_env
from tests.training.test_sft import write_dataset


@pytest.mark.slow
@pytest.mark.parametrize("zero", [pytest.param(2, marks=pytest.mark.long), 3])
def test_two_process_zero_sft_exports_a_loadable_model(tmp_path: Path, zero: int, cache_dir: Path,
                                                        tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl")
    out = tmp_path / "run" / "sft"
    env = subprocess_env()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(29600 + zero),
         "-m", "tests.training.sft_worker", "--data", str(data), "--out", str(out), "--cache", str(cache_dir),
         "--zero", str(zero)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert sum(p.numel() for p in model.parameters()) > 100_000
    shards = list((out / "checkpoints" / "step_6").glob("*optim_states.pt"))
    assert len(shards) == 2, "each rank writes its own optimizer shard"
    val = [r["sft/val_loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "sft/val_loss" in r]
    assert val[-1] < val[0], val
