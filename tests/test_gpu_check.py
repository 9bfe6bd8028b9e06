"""scripts/gpu_check.sh and gpu_check.py where there is no GPU: every step's config composes and validates as the CLI's
does, and the script says there is nothing to check and exits 0 (the steps themselves run on a GPU only; their
last results are in docs/training.md#the-gpu-check)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_every_step_composes_and_validates() -> None:
    out = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--validate"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    steps = [line.split(":")[0] for line in out.stdout.splitlines() if line and not line.startswith(("#", " "))]
    for name in ("sft_zero2", "sft_zero3", "grpo_zero2", "grpo_zero2_shared", "sft_lora", "grpo_lora",
                 "grpo_lora_shared", "eval_hf", "sft_qlora", "grpo_qlora", "mem_zero0", "mem_zero2_ckpt",
                 "mem_zero3", "mem_zero3_ckpt", "mem_zero2_expandable"):
        assert name in steps, out.stdout
    validated = [line for line in out.stdout.splitlines() if line.startswith("  ok ")]
    assert len(validated) == len([s for s in steps if not s.startswith("mem_")]), out.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would run the check")
def test_without_a_gpu_the_script_checks_nothing_and_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_CHECK_PYTHON": sys.executable, "OUT": str(tmp_path)}
    out = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0 and "no CUDA device: nothing to check" in out.stdout, out.stdout + out.stderr
    assert not list(tmp_path.iterdir())  # nothing installed, nothing written
