"""The method × task-variant table: rows, cells (statistics over seeds) and their Markdown and CSV forms.

A row is what the reader compares: an SFT method with its RL stage (`sft`, `skillfactory → grpo`), and for RL runs
also the eval before RL (`skillfactory (pre-RL)`, from the `pre_rl/…` keys), which shows what SFT alone gave. The
pre-RL eval does not depend on the RL config, so runs of several RL variants share one pre-RL row (one value per
seed). The `avg` column averages each run over the suite's variants first, then summarizes over seeds, so its
spread is the seed-to-seed spread of the suite average.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from skillexp.report.collect import ReportError, Run
from skillexp.report.stats import Stats, summarize

AVG = "avg"
SKILL_METRICS = ("answers_per_completion", "reflections_per_completion", "verdict_correct_f1",
                 "verdict_incorrect_f1")
PRE_RL = "pre_rl/"


@dataclass(frozen=True)
class Row:
    label: str
    method: str
    rl: str
    prefix: str  # "" for the final eval, PRE_RL for the eval before RL
    runs: tuple[Run, ...]

    @property
    def stage(self) -> str:
        return "pre_rl" if self.prefix else "final"


@dataclass(frozen=True)
class Cell:
    row: Row
    variant: str  # a task variant or AVG
    metric: str  # resolved: "mean@4", not "mean@k"
    stats: Stats | None
    seeds: tuple[int, ...]


def resolve_metric(metric: str, run: Run) -> str:
    """`mean@k` / `pass@k` name the k this run's eval used."""
    return f"{metric[:-2]}@{run.config['eval']['k']}" if metric.endswith("@k") else metric


def build_rows(runs: Iterable[Run]) -> list[Row]:
    """Rows of one setting: base models first, then per SFT method: without RL, pre-RL, after each RL stage."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.method, run.rl, ""), []).append(run)
        if run.rl != "none" and any(k.startswith(PRE_RL) for k in run.summary):
            pre = groups.setdefault((run.method, "", PRE_RL), [])
            if run.seed not in {r.seed for r in pre}:
                pre.append(run)

    def order(key: tuple[str, str, str]) -> tuple[bool, str, int, str]:
        method, rl, prefix = key
        return method != "none", method, 1 if prefix else 0 if rl == "none" else 2, rl

    rows = []
    for method, rl, prefix in sorted(groups, key=order):
        label = f"{method} (pre-RL)" if prefix else method if rl == "none" else f"{method} → {rl}"
        runs_ = tuple(sorted(groups[(method, rl, prefix)], key=lambda r: r.seed))
        rows.append(Row(label, method, rl, prefix, runs_))
    return rows


def run_value(run: Run, prefix: str, variant: str, metric: str, variants: list[str]) -> float | None:
    """One run's number for a cell; for AVG the mean over all `variants` (None if the run lacks one)."""
    key = resolve_metric(metric, run)
    if variant != AVG:
        value = run.summary.get(f"{prefix}{variant}/{key}")
        return None if value is None else float(value)
    values = [run.summary.get(f"{prefix}{v}/{key}") for v in variants]
    return None if not values or None in values else sum(map(float, values)) / len(values)


def build_cells(rows: list[Row], variants: list[str], metrics: Iterable[str]) -> list[Cell]:
    cells = []
    for metric in metrics:
        for row in rows:
            for variant in [*variants, AVG]:
                pairs = [(r.seed, run_value(r, row.prefix, variant, metric, variants)) for r in row.runs]
                pairs = [(s, v) for s, v in pairs if v is not None]
                cells.append(Cell(row, variant, resolve_metric(metric, row.runs[0]), summarize([v for _, v in pairs]),
                                  tuple(s for s, _ in pairs)))
    return cells


def available_metrics(runs: Iterable[Run]) -> list[str]:
    """Metric names (`mean@k` style where k varies) that some run reports for one of its variants."""
    names = set()
    for run in runs:
        k = f"@{run.config['eval']['k']}"
        for key in run.summary:
            variant, _, metric = key.rpartition("/")
            if variant in run.variants:
                names.add(metric[: -len(k)] + "@k" if metric.endswith(k) else metric)
    return sorted(names)


def check_metric(runs: list[Run], metric: str) -> None:
    if not any(resolve_metric(metric, r) in {k.rpartition("/")[2] for k in r.summary} for r in runs):
        raise ReportError(f"no run has metric {metric!r}: pass --metric with one of {available_metrics(runs)}")


def fmt(stats: Stats | None) -> str:
    if stats is None:
        return "–"
    if stats.std is None:
        return f"{stats.mean:.3f} (n=1)"
    return f"{stats.mean:.3f} ± {stats.std:.3f} [{stats.ci_low:.3f}, {stats.ci_high:.3f}] n={stats.n}"


def markdown_table(grid: dict[str, dict[str, Stats | None]], columns: list[str]) -> str:
    """Rows (method labels) × `columns` of formatted cells; a missing cell is a dash."""
    lines = [f"| method | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
    for label, row in grid.items():
        lines.append(f"| {label} | {' | '.join(fmt(row.get(c)) for c in columns)} |")
    return "\n".join(lines)


CSV_COLUMNS = ["row", "method", "rl", "stage", "variant", "metric", "n", "mean", "std", "ci95_low", "ci95_high",
               "seeds"]


def csv_rows(cells: list[Cell], setting: tuple[tuple[str, str], ...]) -> list[list[str]]:
    """One row per cell, led by the setting's values; empty fields where a statistic is undefined."""
    out = []
    for c in cells:
        s = c.stats
        stat_fields = [s.n, s.mean, s.std, s.ci_low, s.ci_high] if s else [0, None, None, None, None]
        fields = [c.row.label, c.row.method, c.row.rl, c.row.stage, c.variant, c.metric, *stat_fields,
                  " ".join(map(str, c.seeds))]
        out.append([v for _, v in setting] + ["" if f is None else str(f) for f in fields])
    return out


def write_csv(path: Path, setting_keys: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*setting_keys, *CSV_COLUMNS])
        writer.writerows(rows)
