"""Training stages on several processes (and nodes): only training fans out; the pipeline stays one process.

Data building and evaluation run in the pipeline's process on the generation backend (vLLM brings its own
parallelism); a training stage with `trainer.num_processes` > 1 is handed to `torchrun` on this node, whose
ranks read the stage's arguments from a JSON file in the stage directory. While the ranks run, rank 0 owns the
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
from dataclasses import asdict
from pathlib import Path

import torch

from skillexp import preemption
from skillexp.runtime import Runtime
from skillexp.tracking import LoggerConfig, Tracker
from skillexp.training.config import SFTInputs
from skillexp.training.sft import run_sft
from skillexp.utils.io import atomic_write_json
from skillexp.utils.schema import from_dict

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


def _run(inputs: SFTInputs, out_dir: Path, tracker: Tracker) -> Path:
    return run_sft(Path(inputs.data.path), Path(inputs.base.path), inputs.model, inputs.trainer, inputs.sft, out_dir,
                   tracker, inputs.seed)


def sft_stage(inputs: SFTInputs, out_dir: Path, rt: Runtime) -> Path:
    """The sft stage in this process, or on `trainer.num_processes` ranks per node through torchrun (on every node
    of a multi-node Slurm allocation); writes `out_dir`, returns its model."""
    n = num_processes(inputs.trainer.num_processes)
    if n == 1 and len(slurm_nodes()) == 1:
        return _run(inputs, out_dir, rt.tracker)
    spec = out_dir / "launch.json"
    atomic_write_json(spec, {"stage": "sft", "inputs": asdict(inputs), "out_dir": str(out_dir),
                             "run_dir": str(rt.run_dir), "logger": asdict(rt.tracker.cfg),
                             "config": rt.tracker.config})
    cmd = torchrun_command(n, spec)
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}  # a fresh process group of our own
    log.info("SFT on %d processes per node: %s", n, " ".join(cmd))
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
        raise RuntimeError(f"the SFT ranks exited with status {code}; their logs are above. Re-running the same "
                           f"command resumes from the last checkpoint in {out_dir / 'checkpoints'}.")
    return out_dir / "model"


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
    """One rank of a launched stage (torchrun sets RANK/WORLD_SIZE; the engine joins the group)."""
    spec = json.loads(Path(spec_path).read_text())
    inputs = from_dict(SFTInputs, spec["inputs"])
    tracker = Tracker(from_dict(LoggerConfig, spec["logger"]), Path(spec["run_dir"]), spec["config"])
    preemption.install()  # the agent ignores the scheduler's signals; each rank checkpoints and exits on them
    try:
        preemption.run(lambda: _run(inputs, Path(spec["out_dir"]), tracker))
    finally:
        tracker.finish()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][rank " + os.environ.get("RANK", "0")
                        + "][%(name)s] %(message)s")
    main(sys.argv[1])
