"""The method × task-variant table: rows, cells (statistics over seeds) and their Markdown and CSV forms.

A row is what the reader compares: an SFT method with its RL stage (`sft`, `skillfactory → grpo`), and for RL runs
also the eval before RL (`skillfactory (pre-RL)`, from the `pre_rl/…` keys), which shows what SFT alone gave. The
pre-RL eval does not depend on the RL config, so runs of several RL variants share one pre-RL row (one value per
seed). The `avg` column averages each run over the suite's variants first, then summarizes over seeds, so its
spread is the seed-to-seed spread of the suite average.

Each cell's 95% interval: for proportions (mean@k, pass@k, greedy) the two-level bootstrap over the per-question
scores of its seeds (for `avg` the questions of every variant, each variant resampled on its own), else the
Wilson interval of the pooled count; for other metrics Student t over seeds (stats.py says why).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from skillexp.report.collect import ReportError, Run
from skillexp.report.scores import NONNEGATIVE, UNIT_BOUNDED, is_proportion, question_scores, total_count
from skillexp.report.stats import (RESAMPLES, Stats, clip_nonnegative, clip_unit, hierarchical_bootstrap, summarize,
                                   wilson)

AVG = "avg"
SKILL_METRICS = ("answers_per_completion", "reflections_per_completion", "verdict_correct_f1",
                 "verdict_incorrect_f1")
PRE_RL = "pre_rl/"
MARKS = {"bootstrap": "ᵇ", "wilson": "ʷ", "t": "ᵗ", "t_clipped": "ᶜ", "t_nonnegative": "⁺",
         "newcombe": "ⁿ"}  # an interval's mark
INTERVAL_NOTES = {
    "bootstrap": f"two-level percentile bootstrap: {RESAMPLES} resamples of the seeds, then of the questions within "
                 "each seed, from the per-question scores in `generations/<variant>.jsonl` (fixed RNG seed)",
    "wilson": "Wilson score interval of the pooled count (questions × samples × seeds), as the per-question scores "
              "were not there: it treats every sample as independent, so it is too narrow when questions or seeds "
              "differ",
    "t": "mean ± t(0.975, n−1)·std/√n over seeds (not a proportion)",
    "t_clipped": "the t interval over seeds cut to [0, 1]",
    "t_nonnegative": "the t interval over seeds cut at 0 (a count cannot be negative)",
}


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


def cell_interval(stats: Stats, runs: list[Run], prefix: str, variants: list[str], metric: str) -> Stats:
    """The cell's 95% interval (module docstring) over `runs`, one per seed, averaged over `variants`."""
    if not is_proportion(metric):
        if metric in UNIT_BOUNDED:
            return clip_unit(stats)
        return clip_nonnegative(stats) if NONNEGATIVE.match(metric) else stats
    per_seed = [[question_scores(r, prefix, v, metric) for v in variants] for r in runs]
    if all(scores is not None for seed in per_seed for scores in seed):
        _, low, high = hierarchical_bootstrap([[list(s.values()) for s in seed if s] for seed in per_seed])
        return stats.with_interval(low, high, "bootstrap")
    if (n := total_count(runs, prefix, variants, metric)) and 0.0 <= stats.mean <= 1.0:
        return stats.with_interval(*wilson(stats.mean * n, n), "wilson")
    return clip_unit(stats)


def build_cells(rows: list[Row], variants: list[str], metrics: Iterable[str]) -> list[Cell]:
    cells = []
    for metric in metrics:
        for row in rows:
            resolved = resolve_metric(metric, row.runs[0])
            for variant in [*variants, AVG]:
                pairs = [(r, run_value(r, row.prefix, variant, metric, variants)) for r in row.runs]
                pairs = [(r, v) for r, v in pairs if v is not None]
                stats = summarize([v for _, v in pairs])
                if stats is not None:
                    stats = cell_interval(stats, [r for r, _ in pairs], row.prefix,
                                          variants if variant == AVG else [variant], resolved)
                cells.append(Cell(row, variant, resolved, stats, tuple(r.seed for r, _ in pairs)))
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
    """`mean ± std [low, high]ᵇ n=seeds`; no std with one seed, no interval where there is none."""
    if stats is None:
        return "–"
    spread = "" if stats.std is None else f" ± {stats.std:.3f}"
    interval = "" if stats.interval is None else f" [{stats.ci_low:.3f}, {stats.ci_high:.3f}]{MARKS[stats.interval]}"
    return f"{stats.mean:.3f}{spread}{interval} n={stats.n}"


def interval_notes(cells: Iterable[Cell]) -> list[str]:
    """One line per interval method these cells use, led by its mark."""
    used = {c.stats.interval for c in cells if c.stats is not None}
    return [f"{MARKS[m]} {note}." for m, note in INTERVAL_NOTES.items() if m in used]


def markdown_table(grid: dict[str, dict[str, Stats | None]], columns: list[str]) -> str:
    """Rows (method labels) × `columns` of formatted cells; a missing cell is a dash."""
    lines = [f"| method | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
    for label, row in grid.items():
        lines.append(f"| {label} | {' | '.join(fmt(row.get(c)) for c in columns)} |")
    return "\n".join(lines)


CSV_COLUMNS = ["row", "method", "rl", "stage", "variant", "metric", "n", "mean", "std", "ci95_low", "ci95_high",
               "ci95_method", "seeds"]


def csv_rows(cells: list[Cell], setting: tuple[tuple[str, str], ...]) -> list[list[str]]:
    """One row per cell, led by the setting's values; empty fields where a statistic is undefined."""
    out = []
    for c in cells:
        s = c.stats
        stat_fields = [s.n, s.mean, s.std, s.ci_low, s.ci_high, s.interval] if s else [0] + [None] * 5
        fields = [c.row.label, c.row.method, c.row.rl, c.row.stage, c.variant, c.metric, *stat_fields,
                  " ".join(map(str, c.seeds))]
        out.append([v for _, v in setting] + ["" if f is None else str(f) for f in fields])
    return out


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
