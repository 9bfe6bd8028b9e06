"""`python -m skillexp.training.torchrun ...`: torchrun, except that its agent leaves the scheduler's signals to
the ranks.

A Slurm time limit (`--signal=USR2@...`) or preemption (SIGTERM) reaches every process of the job step. Left to
itself, torchrun's agent dies of SIGUSR2 (it has no handler for it) and answers SIGTERM by killing its ranks 30 s
later, whatever they were doing. Here the agent ignores both, the ranks (whose `preemption.install()` replaces the
inherited "ignore") checkpoint at the end of the step and exit with EXIT_PREEMPTED, and the agent then ends as it
does for any rank that failed. Interrupts (Ctrl-C, SIGHUP, SIGQUIT) still stop the agent and its ranks at once.
"""
from __future__ import annotations

import os
import runpy
import signal
import sys

from skillexp.preemption import SIGNALS


def main() -> None:
    for name in SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)  # inherited by the ranks until they install theirs
    os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = "SIGINT,SIGHUP,SIGQUIT"
    sys.argv = ["torchrun", *sys.argv[1:]]
    runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
