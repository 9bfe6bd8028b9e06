"""The pieces of the paper-layout tables (paper.py): one run's value for a column of a suite's `paper:` block (the
schema: skillexp/eval/paper.py), a cell of ours beside the paper's number, which report row a paper row quotes,
whether a section's runs can fill a table at all, and the marked cells the paper contradicts, with their notes.

Values: a column's variant metric (`score` by default: the variant's headline metric) in percent of the runs'
fractions, or on the metric's own scale where the table says `percent: false`; `mean@k` names the variant's k.
A column of several `variants` is their mean, an `average` column the mean of earlier columns, both per run; a
measure that is a `difference` is one measure minus another, per run. Cells: mean (± std over seeds) of the runs.
"""
from __future__ import annotations

import json
import re
from statistics import fmean
from typing import Any

from skillexp.report.collect import Run

PRE_RL = " (pre-RL)"
MARKS = "¹²³⁴⁵⁶⁷⁸⁹"
DEFAULT_PROMPT = "original"


def metric_key(metric: str, run: Run, variant: str) -> str:
    """`mean@k` (also `mean@k_unforced`) with the k this run sampled `variant` with."""
    ev = run.config["eval"]
    k = ((ev.get("variants", {}).get(variant) or {}).get("protocol") or {}).get("k") or ev.get("k")
    return re.sub(r"@k(?=_|$)", f"@{k}", metric)


def variant_value(run: Run, prefix: str, variant: str, metric: str, percent: bool) -> float | None:
    value = run.summary.get(f"{prefix}{variant}/{metric_key(metric, run, variant)}")
    return None if value is None else float(value) * (100.0 if percent else 1.0)


def _mean(parts: list[float | None]) -> float | None:
    return None if not parts or any(p is None for p in parts) else fmean(parts)  # type: ignore[arg-type]


def column_values(run: Run, prefix: str, columns: list[dict[str, Any]], metric: str = "score",
                  percent: bool = True) -> dict[str, float | None]:
    """One run's value for every column; None where the run lacks a variant or the suite does not measure it."""
    out: dict[str, float | None] = {}
    for col in columns:
        if col.get("variant"):
            out[col["name"]] = variant_value(run, prefix, col["variant"], metric, percent)
        elif col.get("variants"):
            out[col["name"]] = _mean([variant_value(run, prefix, v, metric, percent) for v in col["variants"]])
        else:
            out[col["name"]] = _mean([out.get(name) for name in col.get("average") or []])
    return out


def measure_values(run: Run, prefix: str, columns: list[dict[str, Any]], measures: list[dict[str, Any]],
                   percent: bool) -> dict[tuple[str, str], float | None]:
    """One run's value for every (column, measure) of a table laid out with a row per task."""
    out: dict[tuple[str, str], float | None] = {}
    for m in measures:
        if m.get("metric"):
            values = column_values(run, prefix, columns, m["metric"], percent)
            out.update({(c, m["name"]): v for c, v in values.items()})
        else:
            a, b = m["difference"]
            for col in columns:
                x, y = out[(col["name"], a)], out[(col["name"], b)]
                out[(col["name"], m["name"])] = None if x is None or y is None else x - y
    return out


def _std(values: list[float]) -> float:
    m = fmean(values)
    return (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def cell(ours: list[float], paper: float | None, digits: int = 1, mark: str = "") -> str:
    """`mean ± std · paper X (±d)`: ours over seeds, the paper's number (marked if the paper disputes it) and
    ours − paper; a dash where we have nothing."""
    quote = "" if paper is None else f"paper {paper:.{digits}f}{mark}"
    if not ours:
        return "–" if paper is None else f"– · {quote}"
    mean = fmean(ours)
    text = f"{mean:.{digits}f}" + (f" ± {_std(ours):.{digits}f}" if len(ours) > 1 else "")
    return text if paper is None else f"{text} · {quote} ({mean - paper:+.{digits}f})"


def prompt_suffix(eval_config: dict[str, Any]) -> str:
    """What a paper row label adds for runs evaluated with another prompt than the papers' (`original`), so that
    their rows are quoted only where the paper ran that prompt (SkillFactory's Instruction Prompt ablation)."""
    prompt = eval_config.get("prompt", DEFAULT_PROMPT)
    return "" if prompt == DEFAULT_PROMPT else f" [eval.prompt={prompt}]"


def paper_key(label: str, suffix: str) -> str:
    """The paper row a report row is quoted from: its label (an SFT-only or pre-RL eval: the method alone)."""
    return label.removesuffix(PRE_RL) + suffix


def requirement_gaps(spec: dict[str, Any], eval_config: dict[str, Any]) -> list[str]:
    """The table's `requires` that this section's eval settings miss, as sentences' parts; [] when they fit."""
    gaps = []
    for key, wanted in (spec.get("requires") or {}).items():
        node: Any = eval_config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != wanted:
            gaps.append(f"`eval.{key}={json.dumps(wanted)}` (these runs: {json.dumps(node)})")
    return gaps


class Footnotes:
    """The table's cells the paper disputes (`cell_notes`): a mark on each quoted cell, numbered as it appears,
    and the notes under the table."""

    def __init__(self, spec: dict[str, Any], model: str):
        self.notes = {(n["row"], n["column"], n.get("measure")): n for n in spec.get("cell_notes") or []
                      if n["model"] == model}
        self.used: list[tuple[str, float | None, dict[str, Any]]] = []

    def mark(self, row: str, column: str, measure: str | None, paper: float | None) -> str:
        note = self.notes.get((row, column, measure))
        if note is None or paper is None:
            return ""
        self.used.append((MARKS[len(self.used) % len(MARKS)], paper, note))
        return self.used[-1][0]

    def lines(self) -> list[str]:
        out = []
        for mark, paper, n in self.used:
            where = f"`{n['row']}`, {n['column']}" + (f" {n['measure']}" if n.get("measure") else "")
            other = ("" if n.get("alternative") is None else
                     f" (the paper prints {paper:g} here and {n['alternative']:g} elsewhere)")
            out.append(f"{mark} {where}{other}: {n['note']}")
        return out + [""] if out else []
