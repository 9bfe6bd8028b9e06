"""A Hydra callback that ends every multirun with its report (`hydra.callbacks.report`, in conf/hydra/default.yaml).

Hydra calls `on_multirun_end` in the launching process once every job of the sweep returned (the basic launcher
runs them in that process; the submitit launchers wait for their jobs), so the table and figures land next to the
sweep without a second command. When a job fails, Hydra runs the remaining jobs, then raises the first failure
instead of calling `on_multirun_end`: `on_job_end` names each failure as it happens (Hydra itself stays silent until
the end), and `skillexp report <dir>` reports what finished. A report that cannot be written is logged, never
raised: the runs are done and kept.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    def __init__(self, enabled: bool = True, metric: str = "mean@k") -> None:
        self.enabled, self.metric = enabled, metric

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED and config.hydra.mode == RunMode.MULTIRUN:
            error = job_return._return_value  # the exception; `.return_value` would raise it here
            out = Path(config.hydra.runtime.output_dir)
            log.error("run %s failed: %s: %s (run dir %s); the sweep goes on, then `skillexp report %s` reports "
                      "the runs that finished", out.name, type(error).__name__, error, out, config.hydra.sweep.dir,
                      exc_info=error if isinstance(error, BaseException) else None)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from skillexp.report.cli import main

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            ok = main([str(sweep_dir), "--metric", self.metric]) == 0
        except Exception:  # noqa: BLE001 - the sweep's runs are done; a report failure must not fail the sweep
            log.exception("writing the report of %s failed", sweep_dir)
            ok = False
        if not ok:
            log.warning("no report for %s; `skillexp report %s` retries", sweep_dir, sweep_dir)
