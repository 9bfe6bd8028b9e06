"""End-to-end runs of the entrypoint: real Hydra, real models, real engines, real W&B offline runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from skillexp.utils.io import read_jsonl
from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], run_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # a fresh process group: not the one an in-process test (DeepSpeed, vLLM) may have set up in this process
    proc = subprocess.run([sys.executable, "-m", "skillexp", *args, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, timeout=timeout, env=subprocess_env(WANDB_MODE="offline"),
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def check_run_dir(run_dir: Path, variants: list[str], k: int) -> dict[str, float]:
    """The files every run writes, with the keys later stages and reports rely on."""
    assert "run_name:" in (run_dir / "config.yaml").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    for v in variants:
        for metric in (f"mean@{k}", "pass@1", "greedy", "mean_tokens", "truncation_rate", "no_answer_rate"):
            assert f"{v}/{metric}" in summary, (v, metric, sorted(summary))
        rows = read_jsonl(run_dir / "eval" / "generations" / f"{v}.jsonl")
        n_items = int(summary[f"{v}/num_items"])
        assert len(rows) == n_items * (k + 1)  # k samples + 1 greedy per item
        assert {"item_id", "completion", "extracted", "score", "finish_reason", "num_tokens"} <= set(rows[0])
        sampled = [r for r in rows if not r["greedy"]]  # the format failures: samples with no answer found
        assert summary[f"{v}/no_answer_rate"] == sum(r["extracted"] is None for r in sampled) / len(sampled)
    logged = read_jsonl(run_dir / "metrics.jsonl")
    assert any(f"{variants[0]}/mean@{k}" in row for row in logged)
    assert list((run_dir / "wandb").glob("offline-run-*")), "W&B offline run missing"
    return summary


@pytest.mark.long  # the documented `python -m skillexp experiment=smoke` checks the same run dir in the suite
def test_smoke_eval_hf(tmp_path: Path) -> None:
    proc = run_cli(["experiment=smoke"], tmp_path)
    summary = check_run_dir(tmp_path, ["countdown_3", "multiplication_2"], k=2)
    assert all(0.0 <= v <= 1.0 for key, v in summary.items() if key.endswith(("mean@2", "greedy")))
    assert "| variant |" in proc.stdout + proc.stderr
    # Re-running reuses the finished stages: nothing is recomputed.
    again = run_cli(["experiment=smoke"], tmp_path)
    assert "stage eval: reusing" in again.stdout + again.stderr


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.long
def test_main_job_smollm2_scores_on_the_easiest_variant(tmp_path: Path) -> None:
    """The main job's path (SmolLM2 converted from the wheel, vLLM, the CPU suite), cut to two variants."""
    drop = [f"~eval.variants.{v}" for v in ("countdown_4", "countdown_5", "countdown_6", "multiplication_2",
                                             "multiplication_3")]
    run_cli([*drop, "eval.num_items=8"], tmp_path)
    summary = check_run_dir(tmp_path, ["countdown_3", "multiplication_1"], k=4)
    # 1-digit products are within SmolLM2-135M's reach: it scores well above 0 (0.77 mean@4 on 24 items)
    assert summary["multiplication_1/mean@4"] > 0.2


def test_a_failed_run_of_a_basic_multirun_is_named_at_once_and_the_others_finish(tmp_path: Path) -> None:
    """Hydra's basic launcher runs every job, then raises the first failure; our callback names it when it
    happens, and the runs that could finish did."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "skillexp", "-m", "experiment=smoke", "method=none", "logger=none",
         "+eval.variants.countdown_3.max_number=2,100", f"hydra.sweep.dir={sweep}"],  # 2: too few distinct problems
        capture_output=True, text=True, timeout=600, env=subprocess_env(), cwd=ROOT)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "run 0-none-none-tiny-s0 failed: ValueError: countdown: could not make" in out, out[-3000:]
    assert f"skillexp report {sweep}" in out
    assert len(list(sweep.glob("*/summary.json"))) == 1  # the max_number=100 run finished after the failure


def test_a_method_that_builds_no_data_stops_or_goes_on_from_the_base_model(tmp_path: Path) -> None:
    """The random tiny model never answers correctly, so STaR keeps nothing: with method.if_empty=error (the
    default; the smoke experiment sets base) the run stops and names the way out; with method.if_empty=base it
    skips SFT, says so in the summary, and still evaluates."""
    args = ["experiment=smoke", "method=star", "method.num_questions=4", "method.samples_per_question=2",
            "method.sampling.max_tokens=8", "logger=none"]
    proc = subprocess.run([sys.executable, "-m", "skillexp", *args, "method.if_empty=error",
                           f"hydra.run.dir={tmp_path / 'a'}"],
                          capture_output=True, text=True, timeout=600, env=subprocess_env(), cwd=ROOT)
    assert proc.returncode != 0
    assert "method=star produced no SFT rows" in proc.stderr and "method.if_empty=base" in proc.stderr
    run_cli([*args, "method.if_empty=base"], tmp_path / "b")
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["sft/skipped"] == 1.0 and "countdown_3/mean@2" in summary
    assert (tmp_path / "b" / "sft_data").exists() and not (tmp_path / "b" / "sft").exists()
