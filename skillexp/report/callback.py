"""A Hydra callback that ends every multirun with its report (`hydra.callbacks.report`, in conf/hydra/default.yaml).

Hydra calls `on_multirun_end` in the launching process once every job of the sweep returned (the basic launcher
runs them in that process; the submitit launchers wait for their jobs), so the table and figures land next to the
sweep without a second command. A sweep with a failed job stops before this point: run `skillexp report <dir>`
on what finished. A report that cannot be written is logged, never raised: the runs are done and kept.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    def __init__(self, enabled: bool = True, metric: str = "mean@k") -> None:
        self.enabled, self.metric = enabled, metric

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
