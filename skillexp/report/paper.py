"""A paper's table laid out as the paper does: its columns in its order, its averages, and, where the eval suite's
`paper:` block has them for the runs' model, the paper's numbers beside ours with the difference.

Each column is one variant's headline metric (`<variant>/score`: the metric the suite's `protocol` names for it,
e.g. STAT's pass@1, AMC23's avg@64, AIME's pass@64) in percent, averaged over seeds; an average column is each
run's mean over its columns, then the mean over seeds (as the papers average per model). Rows are the report's
rows (`none` is the base model, `X (pre-RL)` the SFT model an RL run started from); the paper's numbers are looked
up by that label, and a pre-RL row also by the method alone, since an SFT-only run gives the same model.
"""
from __future__ import annotations

from statistics import fmean
from typing import Any

from skillexp.report.collect import Run
from skillexp.report.tables import Row

FIDELITY = "docs/fidelity.md in the skillexp checkout"


def _columns(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("columns") or [])


def run_columns(run: Run, prefix: str, columns: list[dict[str, Any]]) -> dict[str, float | None]:
    """One run's value (percent) for every column; None where the run lacks a variant."""
    out: dict[str, float | None] = {}
    for col in columns:
        if col.get("variant"):
            value = run.summary.get(f"{prefix}{col['variant']}/score")
            out[col["name"]] = None if value is None else 100.0 * float(value)
        else:
            parts = [out.get(name) for name in col.get("average") or []]
            out[col["name"]] = None if not parts or None in parts else fmean(parts)  # type: ignore[arg-type]
    return out


def _cell(ours: list[float], paper: float | None) -> str:
    if not ours:
        return "–" if paper is None else f"– · paper {paper:.1f}"
    mean = fmean(ours)
    text = f"{mean:.1f}" + (f" ± {_std(ours):.1f}" if len(ours) > 1 else "")
    return text if paper is None else f"{text} · paper {paper:.1f} ({mean - paper:+.1f})"


def _std(values: list[float]) -> float:
    m = fmean(values)
    return (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def paper_numbers(spec: dict[str, Any], model: str, label: str) -> list[float | None] | None:
    """The paper's row for our row `label` and model, or None when the suite quotes none."""
    numbers = (spec.get("numbers") or {}).get(model) or {}
    row = numbers.get(label)
    if row is None and label.endswith(" (pre-RL)"):
        row = numbers.get(label.removesuffix(" (pre-RL)"))
    return row


def paper_table(rows: list[Row], spec: dict[str, Any], model: str) -> list[str]:
    """Markdown lines: the title, the table, and what its cells mean."""
    columns = _columns(spec)
    names = [c["name"] for c in columns]
    lines = [f"### {spec.get('title') or 'Paper table'}", "",
             "| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    quoted = False
    for row in rows:
        per_run = [run_columns(r, row.prefix, columns) for r in row.runs]
        paper = paper_numbers(spec, model, row.label)
        quoted |= paper is not None
        cells = []
        for i, name in enumerate(names):
            ours = [v[name] for v in per_run if v[name] is not None]
            cells.append(_cell(ours, None if paper is None or i >= len(paper) else paper[i]))
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    seeds = max((len(r.runs) for r in rows), default=0)
    lines += ["", "Accuracy % (each column's metric is named in the suite's config), mean"
              + (" ± std over seeds" if seeds > 1 else "") + "."
              + (f" `paper X (±d)`: the paper's number for `{model}` and the difference ours − paper."
                 if quoted else f" The suite quotes no paper numbers for `{model}`."), ""]
    if spec.get("note"):
        lines += [str(spec["note"]), ""]
    lines += [f"Where this recipe's protocol differs from the paper's, and where the paper is silent: {FIDELITY}.", ""]
    return lines


def paper_section(rows: list[Row]) -> list[str]:
    """The paper-layout tables of a setting's runs, one per table of their eval suite's `paper:` block."""
    if not rows or not rows[0].runs:
        return []
    config = rows[0].runs[0].config
    tables = config["eval"].get("paper") or {}
    return [line for spec in tables.values() if _columns(spec)
            for line in paper_table(rows, spec, config["model"]["name"])]
