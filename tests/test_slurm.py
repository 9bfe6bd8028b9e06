"""Slurm without a cluster: fake `sbatch`/`srun`/`scontrol` on PATH record what skillexp asks of Slurm (the only
fakes in the suite: a scheduler cannot exist here). The job scripts and the pipeline under them are real."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skillexp.training.launch import torchrun_command
from tests.test_main import ROOT
from tests.test_preemption import SFT, _env, _wait_for


def _fake_bin(tmp_path: Path) -> Path:
    """sbatch copies the script it is given and prints a job id; srun/scontrol log their arguments; `scontrol
    show hostnames` expands a two-node list."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "calls"
    scripts = {
        "sbatch": f'cp "${{@: -1}}" "{tmp_path}/job.sh.$$"; echo "Submitted batch job 4242"',
        "srun": f'echo "srun $*" >> "{record}"',
        "scontrol": f'echo "scontrol $*" >> "{record}"; '
                    'if [ "$1 $2" = "show hostnames" ]; then printf "gpu-a01\\ngpu-a02\\n"; fi',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    return bin_dir


def test_the_slurm_launcher_preset_writes_a_requeueable_gpu_job(tmp_path: Path) -> None:
    env = {**_env(), "PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}", "SKILLEXP_SLURM_ACCOUNT": "lab"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillexp", "-m", "hydra/launcher=slurm_gpu", "hydra.launcher.partition=a100",
         "hydra.launcher.timeout_min=720", f"hydra.sweep.dir={tmp_path / 'sweep'}", "experiment=smoke",
         "seed=0,1"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob("job.sh.*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.kill()  # Hydra's launcher would now wait for the (fake) jobs to finish
    scripts = list(tmp_path.glob("job.sh.*"))
    assert scripts, proc.communicate()[0][-3000:]
    script = scripts[0].read_text()
    for line in ("#SBATCH --partition=a100", "#SBATCH --account=lab", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --time=720", "#SBATCH --signal=USR2@300", "#SBATCH --requeue", "#SBATCH --open-mode=append",
                 "#SBATCH --array=0-1", "#SBATCH --ntasks-per-node=1", "export OMP_WAIT_POLICY=PASSIVE"):
        assert line in script, (line, script)
    assert "srun" in script and "-m submitit.core._submit" in script


def test_multi_node_training_runs_torchrun_on_every_node_through_srun(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", f"{_fake_bin(tmp_path)}:{os.environ['PATH']}")
    env = {"SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu-a[01-02]", "SLURM_JOB_ID": "4242"}
    cmd = torchrun_command(8, Path("/runs/x/sft/launch.json"), env)
    assert cmd[:4] == ["srun", "--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert cmd[5:9] == ["-m", "skillexp.training.torchrun", "--nproc_per_node=8", "--nnodes=2"]
    assert "--rdzv_endpoint=gpu-a01:33742" in cmd and "--rdzv_id=4242" in cmd
    assert cmd[-3:] == ["-m", "skillexp.training.launch", "/runs/x/sft/launch.json"]
    single = torchrun_command(2, Path("spec.json"), {})
    assert "--standalone" in single and "srun" not in single


@pytest.mark.slow
def test_the_sbatch_template_checkpoints_requeues_and_resumes(tmp_path: Path) -> None:
    """slurm/run.sbatch as Slurm would run it: USR2 to the batch shell reaches the pipeline, which checkpoints
    mid-SFT and exits 75; the script requeues the job; the requeued job resumes in the same run dir."""
    run_dir = tmp_path / "run"
    env = {**_env(), "PATH": f"{_fake_bin(tmp_path)}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242",
           "SLURM_SUBMIT_DIR": str(ROOT), "SKILLEXP_RUN_DIR": str(run_dir),
           "SKILLEXP_PYTHON": sys.executable, "SKILLEXP_STAGE_CACHE": str(tmp_path / "cache")}
    cmd = ["bash", str(ROOT / "slurm" / "run.sbatch"), *SFT]
    log = open(tmp_path / "job.log", "w")
    job = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    _wait_for(run_dir / "metrics.jsonl", "sft/loss", 2, job)
    job.send_signal(signal.SIGUSR2)
    assert job.wait(120) == 75, (tmp_path / "job.log").read_text()[-3000:]
    assert "scontrol requeue 4242" in (tmp_path / "calls").read_text()
    step = json.loads((run_dir / "sft" / "checkpoints" / "latest.json").read_text())["step"]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"resuming SFT at step {step}" in again.stdout + again.stderr
    assert (run_dir / "summary.json").exists()
