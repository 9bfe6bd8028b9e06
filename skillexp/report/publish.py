"""Show the report on W&B next to the runs it summarizes, through the same Tracker the runs log with.

The report becomes a W&B run of job type "report" in the runs' group (their common `logger.group`, else the sweep
dir's name), holding the results table, the figures and the cell means as summary values; so the dashboard shows
the comparison the Markdown shows. The mode follows the runs: no W&B if they logged none, else `WANDB_MODE` when
set (online to sync), else the runs' own `logger.mode` (offline by default; `wandb sync` uploads it later).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from skillexp.config import LoggerConfig
from skillexp.report.collect import Run
from skillexp.tracking import Tracker
from skillexp.utils.schema import from_dict

MODES = ("auto", "off", "offline", "online")


def wandb_mode(runs: list[Run], requested: str) -> str | None:
    """The W&B mode for the report run, or None for no W&B run (see the module docstring for `auto`)."""
    if requested != "auto":
        return None if requested == "off" else requested
    loggers = [r.config.get("logger") or {} for r in runs]
    if not any(lg.get("backend") == "wandb" for lg in loggers):
        return None
    mode = os.environ.get("WANDB_MODE") or loggers[0].get("mode") or "offline"
    return None if mode == "disabled" else mode


def report_logger(runs: list[Run], sweep_dir: Path, mode: str) -> LoggerConfig:
    """The runs' project and entity, their group, job type "report"."""
    runs_logger = next((r.config["logger"] for r in runs if (r.config.get("logger") or {}).get("backend")
                        == "wandb"), None)
    base = from_dict(LoggerConfig, runs_logger) if runs_logger else LoggerConfig()
    groups = {(r.config.get("logger") or {}).get("group") for r in runs}
    group = groups.pop() if len(groups) == 1 and None not in groups else sweep_dir.name
    return dataclasses.replace(base, backend="wandb", mode=mode, group=group, name=f"report-{sweep_dir.name}",
                               job_type="report", tags=["report"])


def log_report(runs: list[Run], sweep_dir: Path, out_dir: Path, mode: str, columns: list[str],
               rows: list[list[str]], figures: list[Path], summary: dict[str, float],
               config: dict[str, Any]) -> None:
    """One W&B run in `out_dir` with the table, the figures and `summary`; re-running the report resumes it."""
    tracker = Tracker(report_logger(runs, sweep_dir, mode), out_dir, config)
    try:
        tracker.log_table("report/results", columns, rows)
        for path in figures:
            tracker.log_image(f"report/{path.stem}", path)
        tracker.set_summary(summary)
    finally:
        tracker.finish()
