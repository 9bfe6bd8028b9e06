"""Preemption: the scheduler's signal mid-SFT or mid-GRPO checkpoints at the end of the step and exits for a
requeue; the same command then resumes without recomputing finished stages and ends with the same weights as an
uninterrupted run. Also through Hydra's submitit_local launcher, which requeues the job by itself."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skillexp.preemption import EXIT_PREEMPTED
from skillexp.utils.io import read_jsonl
from tests.conftest import subprocess_env
from tests.test_main import ROOT, check_run_dir, run_cli

SFT = ["experiment=smoke", "method.sft.max_steps=40", "trainer.save_every_steps=1000", "eval.num_items=1"]
GRPO = ["experiment=smoke", "method=none", "rl=grpo_cpu", "+task.num_rl=32", "rl.steps=8", "rl.prompts_per_step=2",
        "rl.group_size=4", "rl.mini_batch_prompts=2", "rl.sampling.max_tokens=16", "rl.val_every_steps=0",
        "rl.save_every_steps=1000", "trainer.micro_batch_size=8", "eval.num_items=1"]


def _env() -> dict[str, str]:
    return subprocess_env(WANDB_MODE="offline")


def _wait_for(path: Path, key: str, step: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until `path` (metrics.jsonl) logs `key` at `step` or later."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and any(r.get("step", 0) >= step for r in read_jsonl(path) if key in r):
            return
        assert proc.poll() is None, f"the run ended before step {step} of {key}"
        time.sleep(0.05)
    raise TimeoutError(f"{key} never reached step {step}")


def _interrupt_and_resume(tmp_path: Path, args: list[str], key: str, stage: str,
                          reference_args: tuple[str, ...] = ()) -> tuple[str, Path]:
    """Signal a run at step 2 of `key`, rerun it, and compare with an uninterrupted run (made with `args` and
    `reference_args`, which must not change results); returns the rerun's output and the reference run dir."""
    cache = [f"paths.stage_cache_dir={tmp_path / 'cache'}"]
    run_dir = tmp_path / "run"
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "skillexp", *args, *cache, f"hydra.run.dir={run_dir}"],
                            cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    _wait_for(run_dir / "metrics.jsonl", key, 2, proc)
    proc.send_signal(signal.SIGUSR2)
    assert proc.wait(120) == EXIT_PREEMPTED, (tmp_path / "first.log").read_text()[-3000:]
    first = (tmp_path / "first.log").read_text()
    assert "checkpointing at the end of this step" in first
    saved = json.loads((run_dir / stage / "checkpoints" / "latest.json").read_text())["step"]
    assert 2 <= saved < 8  # the signal's step, not a periodic save (those are off) nor the end
    again = run_cli([*args, *cache], run_dir)
    out = again.stdout + again.stderr
    assert f"resuming {stage.upper() if stage == 'sft' else 'GRPO'} at step {saved}" in out, out[-3000:]
    reference = tmp_path / "reference"
    run_cli([*args, *reference_args, f"paths.stage_cache_dir={tmp_path / 'ref-cache'}"], reference)
    assert (run_dir / stage / "model" / "model.safetensors").read_bytes() == \
        (reference / stage / "model" / "model.safetensors").read_bytes()
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads((reference / "summary.json").read_text())
    return out, reference


# the suite lands signals at exact points (tests/test_preemption_points.py); these send them from outside
@pytest.mark.long
def test_signal_mid_sft_checkpoints_and_the_rerun_resumes_to_the_same_weights(tmp_path: Path) -> None:
    out, _ = _interrupt_and_resume(tmp_path, SFT, "sft/loss", "sft")
    assert "stage sft_data: reusing" in out


@pytest.mark.long
def test_signal_mid_grpo_checkpoints_and_the_rerun_resumes_to_the_same_weights(tmp_path: Path) -> None:
    out, _ = _interrupt_and_resume(tmp_path, GRPO, "rl/reward_mean", "rl")
    assert "stage eval: reusing" in out  # the pre-RL eval was finished before the signal


@pytest.mark.slow
def test_a_signal_to_a_two_rank_sft_checkpoints_both_ranks_at_one_step_and_the_rerun_resumes(tmp_path: Path) -> None:
    """The pipeline passes the signal on to its torchrun ranks (torchrun's agent ignores it and waits); the ranks
    agree on the step, save one checkpoint together and exit; the rerun resumes both to the same weights.
    The uninterrupted two-rank run: the pipeline hands SFT (ZeRO-2 over gloo) and the W&B run to the ranks, rank 0
    logs, the pipeline takes the run back for eval; every step is logged once, all to the same W&B run id."""
    out, reference = _interrupt_and_resume(tmp_path, [*SFT, "trainer.num_processes=2", "trainer.zero_stage=2"],
                                           "sft/loss", "sft", ("trainer.keep_final_checkpoint=true",))
    assert "SFT on 2 processes" in out
    check_run_dir(reference, ["countdown_3", "multiplication_2"], k=2)
    assert len(list((reference / "sft" / "checkpoints").glob("step_*/*optim_states.pt"))) == 2  # one per rank
    steps = [r["step"] for r in read_jsonl(reference / "metrics.jsonl") if "sft/loss" in r]
    assert steps == list(range(1, 41))
    run_id = (reference / "wandb_id.txt").read_text().strip()
    runs = list((reference / "wandb").glob("offline-run-*"))
    assert len(runs) == 3 and all(r.name.endswith(run_id) for r in runs), runs


@pytest.mark.slow
@pytest.mark.long  # the signal path is the two-rank SFT test's (training/launch.py's run_ranks), in the suite
def test_a_signal_to_a_two_rank_grpo_checkpoints_both_ranks_at_one_step_and_the_rerun_resumes(tmp_path: Path) -> None:
    """GRPO on two ranks (one prompt each per step): the ranks agree on the step the signal lands in, checkpoint
    it together and exit for a requeue; the rerun resumes both and ends with the weights of an uninterrupted run."""
    out, reference = _interrupt_and_resume(
        tmp_path, [*GRPO, "trainer.num_processes=2", "trainer.micro_batch_size=4"], "rl/reward_mean", "rl")
    assert "RL on 2 processes per node" in out, out[-3000:]
    assert json.loads((reference / "rl" / "rl_metrics.json").read_text())["world_size"] == 2
    steps = [r["step"] for r in read_jsonl(reference / "metrics.jsonl") if "rl/reward_mean" in r]
    assert steps == list(range(1, 9))


def _python(code: str) -> subprocess.CompletedProcess:
    head = ("import os, signal, time\nfrom skillexp import preemption\npreemption.REDELIVER_S = 0.5\n"
            "preemption.install()\n")
    return subprocess.run([sys.executable, "-c", head + code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_signal_outside_a_training_loop_exits_at_once() -> None:
    proc = _python("def work():\n    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(30)\n"
                   "preemption.run(work)\n")
    assert proc.returncode == EXIT_PREEMPTED and "SIGTERM received: exiting" in proc.stderr, proc.stderr


def test_a_signal_that_lands_in_a_finaliser_or_a_broad_except_is_not_lost() -> None:
    """Python drops what a finaliser raises ("Exception ignored in"), and `except Exception` once swallowed the
    exit: the request stands, is delivered again, and the run still ends in EXIT_PREEMPTED, not in a finish."""
    proc = _python(
        "class Slow:\n    def __del__(self):\n        os.kill(os.getpid(), signal.SIGUSR2)\n        time.sleep(0.2)\n"
        "def work():\n    Slow()\n    try:\n        time.sleep(0.1)\n    except Exception:\n        pass\n"
        "    time.sleep(20)\n    print('finished')\n"
        "preemption.run(work)\n")
    assert proc.returncode == EXIT_PREEMPTED, proc.stdout + proc.stderr
    assert "Exception ignored" in proc.stderr and "finished" not in proc.stdout


def test_a_signal_that_a_library_re_raises_as_its_own_error_still_exits_for_a_requeue() -> None:
    """OmegaConf turns what it catches into its own key errors: a signal that lands inside it came out as a config
    error naming a valid key (exit 2, no requeue). With the request standing, any error ends in EXIT_PREEMPTED."""
    proc = _python("def work():\n    try:\n        os.kill(os.getpid(), signal.SIGTERM)\n        time.sleep(20)\n"
                   "    except BaseException as e:\n        raise KeyError('rl.optim.betas') from e\n"
                   "preemption.run(work)\n")
    assert proc.returncode == EXIT_PREEMPTED and "KeyError" not in proc.stderr, proc.stderr


def test_a_signal_after_the_work_finished_changes_nothing() -> None:
    proc = _python("preemption.run(lambda: None)\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(1)\n"
                   "print('done')\n")
    assert proc.returncode == 0 and "done" in proc.stdout and "after the work finished" in proc.stderr


def _catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (the SigCgt mask of /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


@pytest.mark.parametrize("after_s", [0.1, 0.5, 1.5, 3.0])
def test_a_signal_in_the_first_seconds_exits_for_a_requeue(after_s: float, tmp_path: Path) -> None:
    """`python -m skillexp` catches the scheduler's signals before its imports and the config composition (the
    first ~4 s): a job preempted while it starts exits with the status that requeues it, not killed by the signal."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "skillexp", *SFT, f"hydra.run.dir={tmp_path / 'run'}",
                             f"paths.stage_cache_dir={tmp_path / 'cache'}"], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not _catches(proc.pid, signal.SIGTERM):  # the interpreter's own start-up (~50 ms) comes first
        assert proc.poll() is None and time.monotonic() - start < 2, "no handler within 2 s of the start"
        time.sleep(0.002)
    time.sleep(max(0.0, after_s - (time.monotonic() - start)))
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert "Traceback" not in out and "exiting with status 75" in out, out[-3000:]


@pytest.mark.parametrize("point", ["import:torch", "import:hydra",
                                   "hydra._internal.config_loader_impl:ConfigLoaderImpl.load_configuration",
                                   "skillexp.config:load_run_config"])
def test_a_signal_during_imports_or_composition_exits_for_a_requeue(point: str, tmp_path: Path) -> None:
    """Through the console script's `main()`: the signal lands as torch or Hydra starts to import, as Hydra
    composes the config, or as skillexp validates it."""
    proc = subprocess.run([sys.executable, "tests/signal_at.py", point, "1", "SIGTERM", "--", *SFT,
                           f"hydra.run.dir={tmp_path / 'run'}", f"paths.stage_cache_dir={tmp_path / 'cache'}"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert "signal_at: SIGTERM" in out and proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert "Traceback" not in out and not (tmp_path / "run" / "summary.json").exists()


def test_a_signal_between_two_jobs_of_a_sweep_stops_before_the_second(tmp_path: Path) -> None:
    """A multirun in one process: the signal arrives after the first job finished, while the second one is
    composed and validated. The second job does not start; the sweep exits for a requeue (the first job's stages
    are in the cache for it)."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "tests/signal_at.py", "skillexp.config:load_run_config", "2", "SIGTERM",
                           "--", "-m", "experiment=smoke", "method=none", "eval.num_items=1", "seed=0,1",
                           f"hydra.sweep.dir={sweep}", f"paths.stage_cache_dir={tmp_path / 'cache'}"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == EXIT_PREEMPTED, out[-3000:]
    assert "after the previous run finished" in out, out[-3000:]
    assert [bool(list(sweep.glob(f"{job}*/summary.json"))) for job in (0, 1)] == [True, False], out[-3000:]


@pytest.mark.long
@pytest.mark.parametrize("when", ["SFT data:", "eval countdown_3 (1/"])
def test_a_signal_during_set_up_or_eval_exits_for_a_requeue_and_the_rerun_finishes(when: str, tmp_path: Path) -> None:
    """Outside the step loops (building the SFT set, scoring the eval) the run stops at once with EXIT_PREEMPTED;
    the same command then finishes with the weights and metrics of an uninterrupted run."""
    args = [*SFT, f"paths.stage_cache_dir={tmp_path / 'cache'}"]
    run_dir, log_path = tmp_path / "run", tmp_path / "first.log"
    proc = subprocess.Popen([sys.executable, "-m", "skillexp", *args, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                            env=_env(), stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while when not in (log_path.read_text() if log_path.exists() else "") and time.time() < deadline:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == EXIT_PREEMPTED, log_path.read_text()[-3000:]
    assert not (run_dir / "summary.json").exists()
    run_cli(args, run_dir)
    reference = tmp_path / "reference"
    run_cli([*SFT, f"paths.stage_cache_dir={tmp_path / 'ref-cache'}"], reference)
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads((reference / "summary.json").read_text())


@pytest.mark.long
def test_submitit_local_requeues_a_signalled_job_which_resumes(tmp_path: Path) -> None:
    """The submitit launcher's handler runs after our checkpoint: it dumps the resubmission and requeues, and
    the local controller starts the job again in the same run dir."""
    sweep = tmp_path / "sweep"
    log = open(tmp_path / "multirun.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillexp", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
         f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job",
         f"paths.stage_cache_dir={tmp_path / 'cache'}", *SFT], cwd=ROOT, env=_env(), stdout=log,
        stderr=subprocess.STDOUT)
    run_dir = sweep / "job"
    _wait_for(run_dir / "metrics.jsonl", "sft/loss", 2, proc)
    pid = json.loads((run_dir / "job.json").read_text())["pid"]
    os.kill(pid, signal.SIGUSR2)
    assert proc.wait(300) == 0, (tmp_path / "multirun.log").read_text()[-3000:]
    assert json.loads((run_dir / "job.json").read_text())["pid"] != pid  # a second attempt finished the job
    assert (run_dir / "summary.json").exists()
    steps = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if "sft/loss" in r]
    assert steps[-1] == 40 and len(set(steps)) == 40  # every step logged, the interrupted one at most twice
