"""The report as a W&B run of job type "report" in the runs' group, and the keys it logs.

The run (in the report's out dir) holds the results and comparisons tables, the figures, and as summary values the
cell means with their 95% intervals and the paired differences, so the dashboard shows what results.md shows. Its
mode follows the runs (`--wandb auto`): no W&B if they logged none, else `WANDB_MODE` when set (online to sync),
else the runs' own `logger.mode` (offline by default; `wandb sync` uploads it later). It logs through the same
Tracker as the runs, into their project and entity, in their common `logger.group` (else the sweep dir's name).

Keys (summary values, table columns, images) never hold spaces or arrows: `wandb_key` joins parts with "/" and
turns each into a slug: "→" becomes "-", " (pre-RL)" "-pre_rl", "@" "_at_", and any other run of characters
outside [A-Za-z0-9_-] one "_". Summary keys, led by the setting's slug when a sweep has several settings:
- `<row>/<variant>/<metric>`, `…/<metric>_ci95_low`, `…/<metric>_ci95_high`: a cell, e.g.
  `skillfactory-grpo/countdown_3/mean_at_4`, `skillfactory-pre_rl/avg/mean_at_4_ci95_low`;
- `compare/<row>_vs_<baseline>/<variant>/<metric>_diff` (and `_diff_ci95_low`, `_diff_ci95_high`): a paired
  comparison, e.g. `compare/skillfactory-grpo_vs_none-grpo/avg/mean_at_4_diff`.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from skillexp.tracking import LoggerConfig
from skillexp.report.collect import Run
from skillexp.report.compare import Comparison
from skillexp.report.tables import Cell
from skillexp.tracking import Tracker
from skillexp.utils.schema import from_dict

MODES = ("auto", "off", "offline", "online")
OTHER = re.compile(r"[^A-Za-z0-9_-]+")


def key_part(text: str) -> str:
    """One part of a W&B key (module docstring)."""
    text = text.replace(" (pre-RL)", "-pre_rl").replace("→", "-").replace("@", "_at_")
    return OTHER.sub("_", re.sub(r"\s*-\s*", "-", text)).strip("_") or "_"


def wandb_key(*parts: str) -> str:
    return "/".join(key_part(p) for p in parts if p)


def summary_values(cells: list[Cell], comparisons: list[Comparison], setting: str = "") -> dict[str, float]:
    """The summary values of one setting's cells and comparisons (`setting`: its slug, or "" if it is the only)."""
    out: dict[str, float] = {}
    for c in cells:
        if c.stats is not None:
            out[wandb_key(setting, c.row.label, c.variant, c.metric)] = c.stats.mean
            if c.stats.ci_low is not None and c.stats.ci_high is not None:
                out[wandb_key(setting, c.row.label, c.variant, f"{c.metric}_ci95_low")] = c.stats.ci_low
                out[wandb_key(setting, c.row.label, c.variant, f"{c.metric}_ci95_high")] = c.stats.ci_high
    for c in comparisons:
        pair = f"{key_part(c.row.label)}_vs_{key_part(c.baseline.label)}"
        out[wandb_key(setting, "compare", pair, c.variant, f"{c.metric}_diff")] = c.diff
        if c.low is not None and c.high is not None:
            out[wandb_key(setting, "compare", pair, c.variant, f"{c.metric}_diff_ci95_low")] = c.low
            out[wandb_key(setting, "compare", pair, c.variant, f"{c.metric}_diff_ci95_high")] = c.high
    return out


def wandb_mode(runs: list[Run], requested: str) -> str | None:
    """The W&B mode for the report run, or None for no W&B run (`auto`: see the module docstring)."""
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


def log_report(runs: list[Run], sweep_dir: Path, out_dir: Path, mode: str,
               tables: dict[str, tuple[list[str], list[list[str]]]], figures: list[Path],
               summary: dict[str, float], config: dict[str, Any]) -> None:
    """One W&B run in `out_dir` with `tables` (name -> columns, rows), the figures and `summary`; re-running the
    report resumes it."""
    tracker = Tracker(report_logger(runs, sweep_dir, mode), out_dir, config)
    try:
        for name, (columns, rows) in tables.items():
            tracker.log_table(wandb_key("report", name), [wandb_key(c) for c in columns], rows)
        for path in figures:
            tracker.log_image(wandb_key("report", path.stem), path)
        tracker.set_summary(summary)
    finally:
        tracker.finish()
