"""Preemption and time limits: finish the current step, checkpoint, exit, and let the scheduler requeue.

Slurm warns a job before its time limit with a signal (`--signal=USR2@<delay>`, which the submitit launcher sets
from `signal_delay_s`) and preempts with SIGTERM. `install()` catches both. Inside a training loop the signal only
sets a flag: the loop saves a checkpoint at the end of the current step and calls `exit_if_requested()`. Anywhere
else (data building, eval: their finished parts are already on disk) the job exits at once. Exiting hands the
signal to the handler that was installed before ours — submitit's, which requeues the job and exits — or, with no
such handler (a plain sbatch script, a terminal), exits with status EXIT_PREEMPTED so a wrapper can requeue. The
requeued job runs the same command: finished stages come from the stage cache, the interrupted one resumes from
its checkpoint, and the W&B run id kept in the run dir continues the same run.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any, Iterator

log = logging.getLogger(__name__)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"; slurm/*.sbatch requeue on it
SIGNALS = ("SIGUSR2", "SIGTERM")

_state: dict[str, Any] = {"signum": None, "in_step_loop": 0, "previous": {}}


def install(names: tuple[str, ...] = SIGNALS) -> None:
    """Catch the scheduler's signals in this (main) thread; the handlers they replace are kept and called on exit.
    Installing twice keeps the first set of previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in names:
        signum = getattr(signal, name)
        if signal.getsignal(signum) is not _handle:
            _state["previous"][signum] = signal.getsignal(signum)
            signal.signal(signum, _handle)


def _handle(signum: int, frame: FrameType | None) -> None:
    _state["signum"] = signum
    name = signal.Signals(signum).name
    if _state["in_step_loop"]:
        log.warning("%s received: checkpointing at the end of this step, then exiting for a requeue", name)
    else:
        log.warning("%s received: exiting for a requeue (finished stages are kept)", name)
        _exit(signum, frame)


def requested() -> bool:
    """Has the scheduler asked this job to stop? Training loops save a checkpoint when it has."""
    return _state["signum"] is not None


def exit_if_requested() -> None:
    """Exit (through the previous handler, e.g. submitit's requeue) once the step's checkpoint is written."""
    if _state["signum"] is not None:
        _exit(_state["signum"], None)


@contextlib.contextmanager
def step_loop() -> Iterator[None]:
    """A region where a signal waits for the end of the current step (and its checkpoint) instead of exiting."""
    _state["in_step_loop"] += 1
    try:
        yield
    finally:
        _state["in_step_loop"] -= 1


def _exit(signum: int, frame: FrameType | None) -> None:
    previous = _state["previous"].get(signum)
    _state["signum"] = None
    if callable(previous):
        previous(signum, frame)  # submitit: dump the resubmission, requeue, sys.exit
    log.warning("exiting with status %d (preempted); the same command resumes", EXIT_PREEMPTED)
    sys.exit(EXIT_PREEMPTED)
