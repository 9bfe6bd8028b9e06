"""Preemption and time limits: finish the current step, checkpoint, exit, and let the scheduler requeue.

Slurm warns a job before its time limit with a signal (`--signal=USR2@<delay>`, which the submitit launcher sets
from `signal_delay_s`) and preempts with SIGTERM. `install()` catches both, and a signal can never be lost:

- the handler records it first. Inside a training loop (`step_loop()`) that is all: the loop saves a checkpoint at
  the end of the current step (every rank at the same step: they agree on it, `training.engine.stop_requested`)
  and calls `exit_if_requested()`; a stage that ends while a signal stands exports its model first. A process
  that waits for training ranks (torchrun) passes the signal on to them and exits once they have. Anywhere else
  (set-up, data building, eval: their finished parts are already on disk) the handler raises `Preempted`, a
  BaseException that no `except Exception` swallows;
- Python drops an exception raised inside a finaliser or a callback it ignores errors of, so while the request
  stands a watchdog thread delivers the signal again every `REDELIVER_S` seconds, until the process is in a place
  where the exception propagates;
- `run()` wraps the pipeline: `Preempted` from anywhere ends there, in `exit_now()`, which hands the signal to the
  handler that was installed before ours — submitit's, which requeues the job and exits — or, with no such handler
  (a plain sbatch script, a terminal), exits with status EXIT_PREEMPTED so a wrapper can requeue. A signal that
  arrives once the work is finished (`finished()`) changes nothing: the run ends as it would have, unless another
  `run()` follows in this process (the next job of a sweep), which then stops before it starts;
- outside any `run()` (the entry point installs the handlers as its first act, before the imports and the config
  composition of the first seconds) nothing is in progress: a signal exits there and then, with the same status,
  without unwinding the code it interrupted (an import half done would turn the exception into another error).

The requeued job runs the same command: finished stages come from the stage cache, the interrupted one resumes from
its checkpoint, and the W&B run id kept in the run dir continues the same run.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Iterator, TypeVar

log = logging.getLogger(__name__)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"; slurm/*.sbatch requeue on it
SIGNALS = ("SIGUSR2", "SIGTERM")
REDELIVER_S = 30.0  # a request still standing after this long is delivered again (see the module docstring)
T = TypeVar("T")

_state: dict[str, Any] = {"signum": None, "in_step_loop": 0, "previous": {}, "finished": False, "watchdog": None,
                          "forward": [], "running": False, "late": None}


class Preempted(BaseException):
    """The scheduler asked this job to stop; raised where stopping is safe, handled by `run()`."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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
    name = signal.Signals(signum).name
    if _state["finished"]:
        _state["late"] = signum  # a run() that follows in this process stops before it starts
        log.warning("%s received after the work finished: nothing to checkpoint", name)
        return
    if not _state["running"] and not _state["forward"]:  # start-up, composition, validation: nothing to save
        log.warning("%s received before the work started: exiting for a requeue", name)
        exit_now(signum, unwind=False)
    for forward in _state["forward"]:
        forward(signum)
    if _state["signum"] is None:
        _state["signum"] = signum
        _start_watchdog(signum)
        if _state["forward"]:
            log.warning("%s received: passed on to the training ranks, which checkpoint at the end of their step; "
                        "exiting for a requeue after them", name)
        elif _state["in_step_loop"]:
            log.warning("%s received: checkpointing at the end of this step, then exiting for a requeue", name)
        else:
            log.warning("%s received: exiting for a requeue (finished stages are kept)", name)
    if not _state["in_step_loop"]:
        raise Preempted(signum)


def _start_watchdog(signum: int) -> None:
    """Deliver `signum` again while the request stands and no step loop is about to honour it."""
    stop = threading.Event()

    def again() -> None:
        while not stop.wait(REDELIVER_S):
            if _state["signum"] is None or _state["finished"]:
                return
            if not _state["in_step_loop"] or _state["forward"]:  # also: processes started since the signal
                os.kill(os.getpid(), signum)

    _state["watchdog"] = stop
    threading.Thread(target=again, name="preemption-watchdog", daemon=True).start()


def requested() -> bool:
    """Has the scheduler asked this job to stop? Training loops save a checkpoint when it has."""
    return _state["signum"] is not None


def signal_number() -> int:
    """The signal standing (0: none)."""
    return int(_state["signum"] or 0)


def exit_if_requested() -> None:
    """A safe point: stop here (the step's checkpoint is written) if the scheduler asked to."""
    if _state["signum"] is not None and not _state["finished"]:
        raise Preempted(_state["signum"])


def adopt(signum: int) -> None:
    """Another rank was signalled: stop with it (the ranks agree at each step, see `training.engine`)."""
    if _state["signum"] is None and not _state["finished"]:
        _state["signum"] = signum
        log.warning("%s received by another rank: checkpointing at the end of this step, then exiting",
                    signal.Signals(signum).name)


@contextlib.contextmanager
def step_loop(forward: Callable[[int], None] | None = None) -> Iterator[None]:
    """A region where a signal waits for the end of the current step (and its checkpoint, or the export that ends
    the stage) instead of stopping at once. Leaving it with a request standing stops there. `forward(signum)`
    passes each signal on (to training ranks this process waits for), also re-delivered while it stands."""
    _state["in_step_loop"] += 1
    if forward is not None:
        _state["forward"].append(forward)
        if _state["signum"] is not None:
            forward(_state["signum"])
    try:
        yield
    finally:
        _state["in_step_loop"] -= 1
        if forward is not None:
            _state["forward"].remove(forward)
    exit_if_requested()


def finished() -> None:
    """The work is done and saved: a signal from now on has nothing to interrupt."""
    _state["finished"] = True
    if _state["watchdog"] is not None:
        _state["watchdog"].set()


def run(work: Callable[[], T]) -> T:
    """`work()`, ending in `exit_now()` if the scheduler asked this job to stop, wherever that landed (also before
    it starts, for a signal that came after an earlier `run()` of this process had finished)."""
    if _state["late"] is not None:
        log.warning("%s received after the previous run finished: exiting before this one starts",
                    signal.Signals(_state["late"]).name)
        exit_now(_state["late"])
    _state["finished"], _state["running"] = False, True
    try:
        result = work()
    except Preempted as p:
        exit_now(p.signum)
    except BaseException:
        if _state["signum"] is not None:  # the Preempted came out as another error: a library wrapped it (OmegaConf
            exit_now(_state["signum"])    # re-raises what it catches as its own key errors); the rerun resumes
        raise
    finally:
        _state["running"] = False
    finished()
    return result


def exit_now(signum: int, unwind: bool = True) -> None:
    """Exit through the previous handler (submitit: dump the resubmission, requeue, exit), else with
    EXIT_PREEMPTED. Further signals are ignored while it runs. `unwind=False` (nothing in progress) exits without
    raising into the code the signal interrupted: an exception raised into an import half done (torch, numpy)
    comes out as another error, and importing anything after it can fail too."""
    finished()
    for name in SIGNALS:
        with contextlib.suppress(ValueError):  # not the main thread: leave the handlers as they are
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    _state["signum"] = _state["late"] = None
    previous = _state["previous"].get(signum)
    if callable(previous):
        previous(signum, None)
    log.warning("exiting with status %d (preempted); the same command resumes", EXIT_PREEMPTED)
    if unwind:
        sys.exit(EXIT_PREEMPTED)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(EXIT_PREEMPTED)
