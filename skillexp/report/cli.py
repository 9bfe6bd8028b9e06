"""`skillexp report <sweep dir>` / `python -m skillexp.report`: tables and figures comparing methods over seeds.

Reads only the run dirs (config.yaml, summary.json, metrics.jsonl, the evals' generations), so it works offline,
on a copy of a sweep, or while other runs of the sweep are still going (those are named and skipped). Bad input
exits with status 2 and a message that says what to change. Writes results.md, results.csv (one row per cell),
comparisons.csv (one row per paired comparison) and the figures; with W&B, a report run (publish.py).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from skillexp.report import compare
from skillexp.report.collect import ReportError, Run, Sweep, collect, settings
from skillexp.report.paper import paper_section
from skillexp.report.plots import accuracy_figure, colours, rewards_figure, save, skill_use_figure
from skillexp.report.publish import MODES, log_report, summary_values, wandb_mode
from skillexp.report.scores import is_proportion
from skillexp.report.selection import lr_section
from skillexp.report.tables import (AVG, CSV_COLUMNS, SKILL_METRICS, build_cells, build_rows, check_metric,
                                    csv_rows, interval_notes, markdown_table, write_csv)

REWARD_KEY = "rl/reward_mean"


@dataclass
class Report:
    markdown: list[str] = field(default_factory=list)
    csv: list[list[str]] = field(default_factory=list)
    comparisons: list[list[str]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)  # W&B summary values (publish.py names the keys)


NO_ANSWER = "no_answer_rate"  # printed beside every score table (skillexp/eval/stage.py)


def describe(run: Run) -> str:
    """The parts of a run's config a reader needs to read its numbers: model, task, eval suite and budget."""
    c, e = run.config, run.config["eval"]
    return (f"model `{c['model']['name']}` · task `{c['task'].get('kind')}` · eval `{e.get('name')}` "
            f"({e.get('split')} split, {e.get('num_items')} items per variant, k={e.get('k')})")


def setting_name(setting: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting)


def slug(setting: tuple[tuple[str, str], ...]) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", "_".join(v for _, v in setting))[:80]


def report_setting(report: Report, sweep: Sweep, setting: tuple[tuple[str, str], ...], runs: list[Run],
                   metric: str, baseline: str, out_dir: Path, paper_model: str | None = None) -> None:
    """Tables, comparisons, figures, CSV rows and W&B summary values of one setting (one model, task, eval...)."""
    variants = list(dict.fromkeys(v for r in runs for v in r.variants))
    rows = build_rows(runs)
    cells = build_cells(rows, variants, [metric, *(m for m in (NO_ANSWER, *SKILL_METRICS) if m != metric)])
    primary = [c for c in cells if c.metric == cells[0].metric]
    resolved = primary[0].metric
    suffix = f"_{slug(setting)}" if len(settings(sweep.runs)) > 1 else ""
    title = f"{sweep.root.name}: {runs[0].config['model']['name']}, eval {runs[0].config['eval'].get('name')}" + (
        f" ({setting_name(setting)})" if setting else "")
    columns = [*variants, AVG]
    colour = colours([row.label for row in rows])

    grid = {row.label: {c.variant: c.stats for c in primary if c.row is row} for row in rows}
    md = report.markdown
    md += [f"## {setting_name(setting) or 'Results'}", "", describe(runs[0]), "", *paper_section(rows, paper_model),
           *lr_section(rows), f"### {resolved}", "", markdown_table(grid, columns), "", *interval_notes(primary), ""]
    figures = [save(accuracy_figure(grid, columns, resolved, title, colour, is_proportion(resolved)),
                    out_dir / f"accuracy{suffix}.png")]
    no_answer = [c for c in cells if c.metric == NO_ANSWER]
    if resolved != NO_ANSWER and any(c.stats is not None for c in no_answer):
        md += [f"### No answer found ({NO_ANSWER})", "", "The share of samples in which the task found no answer "
               "where its prompt asked for one: a format failure, not a wrong answer (each score above counts them "
               "as 0).", "", markdown_table({row.label: {c.variant: c.stats for c in no_answer if c.row is row}
                                             for row in rows}, columns), ""]
    comparisons, unmatched = compare.compare_rows(rows, variants, metric, baseline)
    md += compare.markdown(comparisons, unmatched, columns, baseline)

    skill = {m: {row.label: {c.variant: c.stats for c in cells if c.row is row and c.metric == m} for row in rows}
             for m in SKILL_METRICS}
    if any(s is not None for g in skill.values() for row in g.values() for s in row.values()):
        avg_grid = {row.label: {m: skill[m][row.label].get(AVG) for m in SKILL_METRICS} for row in rows}
        skill_cells = [c for c in cells if c.metric in SKILL_METRICS and c.variant == AVG]
        md += ["### Skill use (each run's mean over variants)", "", markdown_table(avg_grid, list(SKILL_METRICS)), "",
               *interval_notes(skill_cells), ""]
        figures.append(save(skill_use_figure(skill, columns, title, colour), out_dir / f"skill_use{suffix}.png"))

    rl_runs = [(row.label, r, r.reward_curve(REWARD_KEY)) for row in rows if row.rl not in ("", "none")
               for r in row.runs]
    curves: dict[str, list[dict[int, float]]] = {}
    for label, _, curve in rl_runs:
        if curve:
            curves.setdefault(label, []).append(curve)
    if curves:
        figures.append(save(rewards_figure(curves, REWARD_KEY, title, colour), out_dir / f"rewards{suffix}.png"))
    if missing := [str(r.path.relative_to(sweep.root)) for _, r, curve in rl_runs if not curve]:
        # a run whose RL stage came from the stage cache logged no RL steps of its own
        md += [f"No `{REWARD_KEY}` steps in the metrics.jsonl of {len(missing)} RL run(s), left out of the reward "
               f"curves: {', '.join(f'`{m}`' for m in missing)}.", ""]
    md += [f"![{p.stem}]({p.name})" for p in figures] + [""]
    report.figures += figures

    report.csv += csv_rows(cells, setting)
    report.comparisons += compare.csv_rows(comparisons, setting)
    report.summary.update(summary_values(primary, comparisons, slug(setting) if suffix else ""))


def wall_minutes(run: Run) -> str:
    """Minutes from the run's (last) start to its summary; stages it reused from the cache cost it nothing."""
    try:
        started = json.loads((run.path / "job.json").read_text())["started"]
        return f"{((run.path / 'summary.json').stat().st_mtime - started) / 60:.1f}"
    except (OSError, KeyError, ValueError):
        return "–"


# the run table's time columns: (header, the phases of skillexp/timing.py it adds up)
PHASE_COLUMNS = (("engines s", ("engine_start",)), ("SFT data s", ("sft_data",)), ("SFT s", ("sft",)),
                 ("rollout s", ("rl_rollout",)), ("update s", ("rl_update",)),
                 ("RL other s", ("rl", "rl_val")), ("evals s", ("eval", "subset")), ("other s", ("other",)))


def timing_cells(run: Run) -> list[str]:
    """The run's seconds per phase group and its peak RSS (timing.json), '–' for a run without one."""
    try:
        timing = json.loads((run.path / "timing.json").read_text())
        phases = timing["phases_s"]
    except (OSError, KeyError, ValueError):
        return ["–"] * (len(PHASE_COLUMNS) + 1)
    cells = [f"{sum(phases.get(p, 0.0) for p in names):.0f}" for _, names in PHASE_COLUMNS]
    rss = timing.get("peak_rss_gib")
    return cells + ["–" if rss is None else f"{rss:.1f}"]


def runs_table(sweep: Sweep, named: bool) -> list[str]:
    """The run table: what each run is, its wall minutes, where its time went and its peak memory."""
    header = ["method", "rl", "seed", *(["setting"] if named else []), "minutes",
              *(h for h, _ in PHASE_COLUMNS), "peak RSS GiB", "run dir"]
    lines = ["## Runs", "", "Seconds per phase (`timing.json`; a stage reused from the cache costs nothing) and each "
             "run's peak RSS since it started (runs of one process each start from zero).", "",
             "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for r in sorted(sweep.runs, key=lambda r: (r.setting, r.method, r.rl, r.seed)):
        cells = [r.method, r.rl, str(r.seed), *([setting_name(r.setting)] if named else []), wall_minutes(r),
                 *timing_cells(r), f"`{r.path.relative_to(sweep.root)}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(sweep: Sweep, out_dir: Path, metric: str, baseline: str = "none",
                 paper_model: str | None = None) -> Report:
    """results.md, results.csv, comparisons.csv and the figures in `out_dir`; returns what was written."""
    check_metric(sweep.runs, metric)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    report.markdown += [
        f"# Report: {sweep.root.name}", "",
        f"`{sweep.root.resolve()}`: {len(sweep.runs)} finished runs. Metric `{metric}`"
        + (" (k = each run's `eval.k`)" if metric.endswith("@k") else "") + f"; baseline `{baseline}`.", "",
        "Each cell: mean ± sample std over seeds [95% interval] n = seeds; the mark after the interval names how it "
        "was computed (listed under each table). Accuracies (mean@k, pass@k, greedy) get a bootstrap over seeds and "
        "the questions within them, from the per-question scores in the runs' `generations/`, so their intervals "
        "stay inside [0, 1] and count the finite question set; with one seed they cover the questions only. "
        "`avg`: each run's mean over the suite's variants, then over seeds. `X (pre-RL)`: X's RL runs evaluated "
        "before RL, i.e. what the SFT stage alone gave (`none (pre-RL)` is the base model). Paired comparisons: "
        f"each row minus the `{baseline}` row after the same RL stage, on the same seeds and questions.", ""]
    if sweep.setting_keys:
        report.markdown += [f"Runs differ in {', '.join(f'`{k}`' for k in sweep.setting_keys)}, so each setting "
                            "has its own section; runs are never averaged across settings.", ""]
    for setting in settings(sweep.runs):
        report_setting(report, sweep, setting, [r for r in sweep.runs if r.setting == setting], metric, baseline,
                       out_dir, paper_model)
    report.markdown += runs_table(sweep, bool(sweep.setting_keys))
    if skipped := [r for r in sweep.runs if r.summary.get("sft/skipped")]:
        report.markdown += ["", "## Runs without SFT", "", "Their method built no SFT data (`method.if_empty=base`), "
                            "so they went on from the base model; their cells average them in as they are:", "",
                            *[f"- `{r.path.relative_to(sweep.root)}`" for r in skipped]]
    if sweep.warnings:
        report.markdown += ["", "## Skipped", "", *[f"- {w}" for w in sweep.warnings]]
    (out_dir / "results.md").write_text("\n".join(report.markdown) + "\n", encoding="utf-8")
    write_csv(out_dir / "results.csv", [*sweep.setting_keys, *CSV_COLUMNS], report.csv)
    write_csv(out_dir / "comparisons.csv", [*sweep.setting_keys, *compare.COLUMNS], report.comparisons)
    return report


def check_baseline(runs: list[Run], baseline: str) -> None:
    if baseline not in (methods := sorted({r.method for r in runs})):
        raise ReportError(f"no run has method {baseline!r}: pass --baseline with one of {methods}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="skillexp report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun dir, or any dir with run dirs below it")
    parser.add_argument("--out", type=Path, help="where to write (default: <sweep_dir>/report)")
    parser.add_argument("--metric", default="mean@k",
                        help="per-variant metric of summary.json: mean@k (default; k from each run), greedy, pass@1...")
    parser.add_argument("--baseline", help="the method each row is compared with, after the same RL stage and on "
                        "the same seeds and questions (default: none, i.e. the base model / RL alone)")
    parser.add_argument("--paper-model", help="quote the papers' numbers for this model (as the suites name it, e.g. "
                        "qwen2.5-1.5b-instruct) whatever model the runs used: a CPU twin's layout check")
    parser.add_argument("--wandb", choices=MODES, default="auto",
                        help="log the report as a W&B run: auto follows the runs' logger and WANDB_MODE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out_dir = args.out or args.sweep_dir / "report"
    try:
        sweep = collect(args.sweep_dir, exclude=out_dir)
        for warning in sweep.warnings:
            print(f"skillexp report: warning: {warning}", file=sys.stderr)
        if args.baseline is not None:
            check_baseline(sweep.runs, args.baseline)
        report = write_report(sweep, out_dir, args.metric, args.baseline or "none", args.paper_model)
    except ReportError as e:
        print(f"skillexp report: error: {e}", file=sys.stderr)
        return 2
    mode = wandb_mode(sweep.runs, args.wandb)
    if mode is not None:
        tables = {"results": ([*sweep.setting_keys, *CSV_COLUMNS], report.csv),
                  "comparisons": ([*sweep.setting_keys, *compare.COLUMNS], report.comparisons)}
        log_report(sweep.runs, sweep.root, out_dir, mode, tables, report.figures, report.summary,
                   {"sweep_dir": str(sweep.root.resolve()), "metric": args.metric,
                    "baseline": args.baseline or "none", "runs": [str(r.path) for r in sweep.runs]})
    print("\n".join(report.markdown))
    print(f"\nreport written to {out_dir}" + (f" (W&B run, {mode})" if mode else ""))
    return 0
