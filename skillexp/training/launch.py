"""Training stages on several processes (and nodes): only training fans out; the pipeline stays one process.

Data building and evaluation run in the pipeline's process on the generation backend (vLLM brings its own
parallelism); a training stage (SFT, GRPO) with `trainer.num_processes` > 1 is handed to `torchrun` on this node,
whose ranks read the stage's arguments from a JSON file in the stage directory. While the ranks run, rank 0 owns the
W&B run (the pipeline hands it over and takes it back), so live curves keep flowing into the same run.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from skillexp import preemption
from skillexp.runtime import Runtime
from skillexp.stage_cache import StageInputs
from skillexp.training.config import TrainerConfig
from skillexp.utils.io import atomic_write_json
from skillexp.utils.schema import from_dict, to_plain

log = logging.getLogger(__name__)
LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "TORCHELASTIC_RUN_ID", "GROUP_RANK", "ROLE_RANK")


def num_processes(requested: int) -> int:
    """`trainer.num_processes`; 0 means one per visible GPU (one on a CPU-only machine)."""
    return requested or max(1, torch.cuda.device_count())


def slurm_nodes(env: dict[str, str] | None = None) -> list[str]:
    """The host names of this Slurm allocation (one entry outside Slurm or on one node)."""
    env = dict(os.environ) if env is None else env
    if int(env.get("SLURM_JOB_NUM_NODES", "1")) <= 1:
        return [socket.gethostname()]
    out = subprocess.run(["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]], capture_output=True,
                         text=True, check=True).stdout.split()
    if len(out) != int(env["SLURM_JOB_NUM_NODES"]):
        raise RuntimeError(f"scontrol listed {out} for {env['SLURM_JOB_NUM_NODES']} nodes")
    return out


def torchrun_command(nproc_per_node: int, spec: Path, env: dict[str, str] | None = None) -> list[str]:
    """torchrun on this node, or on every node of a multi-node Slurm allocation: one `srun` task per node, each a
    torchrun agent that meets the others at the first host (c10d rendezvous keyed by the job id)."""
    env = dict(os.environ) if env is None else env
    torchrun = [sys.executable, "-m", "skillexp.training.torchrun", f"--nproc_per_node={nproc_per_node}"]
    stage = ["-m", "skillexp.training.launch", str(spec)]
    hosts = slurm_nodes(env)
    if len(hosts) == 1:
        return [*torchrun, "--standalone", *stage]
    job = env.get("SLURM_JOB_ID", "0")
    port = 29500 + int(job) % 20000  # one port per job: two jobs sharing a head node must not collide
    return ["srun", f"--nodes={len(hosts)}", "--ntasks-per-node=1", "--kill-on-bad-exit=1", *torchrun,
            f"--nnodes={len(hosts)}", "--rdzv_backend=c10d", f"--rdzv_endpoint={hosts[0]}:{port}",
            f"--rdzv_id={job}", *stage]


def check_world(inputs: Any) -> None:
    """Refuse to train `inputs` (a record with `trainer` and `world`) on other ranks than it was keyed for."""
    n = launched(inputs.trainer)
    ranks, planned = n * len(slurm_nodes()) if n else 1, inputs.world
    if ranks != planned:
        raise RuntimeError(f"this {inputs.STAGE} stage was planned (and keyed) for {planned} training rank(s) but "
                           f"would run on {ranks}: the GPUs visible to the run changed after start-up; start it again "
                           "where it is to run.")


def launched(trainer: TrainerConfig) -> int:
    """Ranks per node when the stage must run under torchrun (several ranks, or several Slurm nodes); 0 when it
    runs in this process."""
    n = num_processes(trainer.num_processes)
    return 0 if n == 1 and len(slurm_nodes()) == 1 else n


def run_ranks(inputs: StageInputs, out_dir: Path, rt: Runtime, n: int) -> None:
    """Run the stage of `inputs` ("sft", "rl") on `n` ranks per node through torchrun and wait for them. The ranks
    read their arguments from `out_dir/launch.json` and run the stage's `on_rank` (skillexp/stages.py); rank 0 logs
    to this run's W&B run meanwhile."""
    stage = inputs.STAGE
    spec = out_dir / "launch.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(spec, {"stage": stage, "inputs": to_plain(inputs), "out_dir": str(out_dir),
                             "runtime": rt.to_dict()})
    cmd = torchrun_command(n, spec)
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}  # a fresh process group of our own
    log.info("%s on %d processes per node: %s", stage.upper(), n, " ".join(cmd))
    with rt.tracker.handed_off():
        proc = subprocess.Popen(cmd, env=env)
        try:
            # a scheduler's signal to this process goes on to the ranks, which checkpoint and exit; so does this
            # process once they have (on Slurm the ranks are signalled too: a second signal changes nothing)
            with preemption.step_loop(forward=lambda signum: _signal_ranks(proc.pid, signum)):
                code = proc.wait()
        finally:
            if proc.poll() is None:  # an interrupt or a bug here: do not leave the ranks running
                proc.kill()
                proc.wait()
    if code != 0:
        raise RuntimeError(f"the {stage.upper()} ranks exited with status {code}; their logs are above. Re-running "
                           f"the same command resumes from the last checkpoint in {out_dir / 'checkpoints'}.")


def _signal_ranks(agent: int, signum: int) -> None:
    """Send `signum` to the training ranks under the torchrun agent `agent` (not to the agent, which waits)."""
    import psutil

    try:
        ranks = psutil.Process(agent).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for rank in ranks:
        with contextlib.suppress(psutil.NoSuchProcess):
            rank.send_signal(signum)


def main(spec_path: str) -> None:
    """One rank of a launched stage (torchrun sets RANK/WORLD_SIZE; the engine joins the group): the stage's
    `on_rank`, found in the stage registry."""
    from skillexp import stages

    spec = json.loads(Path(spec_path).read_text())
    stage = stages.get(spec["stage"])
    inputs = from_dict(stage.inputs, spec["inputs"])
    rt = Runtime.from_dict(spec["runtime"])
    preemption.install()  # the agent ignores the scheduler's signals; each rank checkpoints and exits on them
    try:
        preemption.run(lambda: stage.on_rank(inputs, Path(spec["out_dir"]), rt))
    finally:
        rt.tracker.finish()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][rank " + os.environ.get("RANK", "0")
                        + "][%(name)s] %(message)s")
    main(sys.argv[1])
