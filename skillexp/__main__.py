"""`python -m skillexp` / `skillexp`: compose the Hydra config, validate it, run the pipeline.
`skillexp report <sweep dir>` writes a report over finished runs instead (skillexp/report/), `skillexp cache`
lists or cleans the stage cache (skillexp/stage_cache.py), both without Hydra, `skillexp data prepare`
downloads a run's hub datasets into local files (skillexp/prepare.py), and `skillexp teacher estimate` counts a
run's teacher requests and their cost without sending any (skillexp/estimate.py).

A config error exits with status 2 and one message naming the key and the fix, before any heavy work. A
scheduler's signal is caught from the first instant (skillexp/preemption.py): this module imports nothing heavy
before the handlers are in place, so a job preempted while it starts exits with the status that requeues it.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from skillexp import preemption  # the standard library only

if __name__ == "__main__":  # `python -m skillexp`: before the seconds of imports and composition below
    preemption.install()

if TYPE_CHECKING:
    from omegaconf import DictConfig

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM configures its own loggers from this at import

log = logging.getLogger("skillexp")


def run_main(cfg: DictConfig) -> float | None:
    """One run (one job of a sweep): Hydra calls it with the composed config, in this process or a submitit job."""
    preemption.install()  # in a submitit job, over submitit's handlers (kept: they requeue the job)
    from hydra.core.hydra_config import HydraConfig

    from skillexp.config import load_run_config
    from skillexp.utils.schema import ConfigError

    try:
        run = load_run_config(cfg)
    except ConfigError as e:  # exit here, not at the end of a sweep: every job of it would fail the same way
        _user_error(e)
    from skillexp.pipeline import run_pipeline
    from skillexp.precision import announce

    announce(run.precision, log)

    from skillexp.eval.stage import format_table

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:  # a user's mistake that a pipeline check finds (the GPU memory plan, a dead teacher): one line and exit 2
        summary = preemption.run(lambda: run_pipeline(run, run_dir))  # here, before Hydra adds a line of its own
    except Exception as e:  # noqa: BLE001 - classified: a bug re-raises with its traceback
        _user_error(e)
    print(f"\n{run.run_name}: {run.model.name} on eval={run.eval.name} ({run.eval.split} split), run dir {run_dir}")
    print(format_table(summary))
    return summary.get("avg/score")


def _user_error(e: BaseException) -> None:
    """Exit 2 with the one-line message for a user's mistake; re-raise a bug (or anything, when debugging)."""
    from skillexp.user_errors import DEBUG_HINT, explain

    message = explain(e)
    if message is None or os.environ.get("SKILLEXP_DEBUG") == "1":
        raise e
    print(f"skillexp: {message}\n{DEBUG_HINT}", file=sys.stderr)
    sys.exit(2)


def hydra_main():
    """`run_main` behind `hydra.main`, with the schemas registered (imported here: seconds, after the handlers)."""
    import hydra

    from skillexp.config import PROJECT_DIR, register_schemas

    register_schemas()
    return hydra.main(version_base="1.3", config_path=str(PROJECT_DIR / "conf"), config_name="config")(run_main)


def main() -> None:
    """The console script: `report` / `cache` as first argument are those commands; anything else goes to Hydra,
    whose errors come back here (HYDRA_FULL_ERROR: raised, not printed) to be told in a line."""
    if sys.argv[1:2] == ["report"]:
        from skillexp.report.cli import main as report

        sys.exit(report(sys.argv[2:]))
    if sys.argv[1:2] == ["data"]:
        from skillexp.prepare import main as data

        sys.exit(data(sys.argv[2:]))
    if sys.argv[1:2] == ["teacher"]:
        from skillexp.estimate import main as teacher

        sys.exit(teacher(sys.argv[2:]))
    if sys.argv[1:2] == ["cache"]:
        from skillexp.stage_cache import main as cache

        sys.exit(cache(sys.argv[2:]))
    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # the user asked for tracebacks with Hydra's own switch
        os.environ["SKILLEXP_DEBUG"] = "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # ours, to classify errors; jobs inherit it, so only SKILLEXP_DEBUG counts
    preemption.install()  # the console script's first act (`python -m skillexp` did it at import)
    try:
        hydra_main()()
    except Exception as e:  # noqa: BLE001 - classified: a user's mistake exits 2, a bug keeps its traceback
        _user_error(e)


if __name__ == "__main__":
    main()
