"""A paper's table laid out as the paper does: its rows and columns in its order, its averages, and, where the eval
suite's `paper:` block quotes the runs' model, the paper's number beside ours with the difference.

Every row the paper quotes for the model is printed, in the paper's order, whether or not a run fills it (then
ours is a dash); our rows it does not quote follow. Rows are the report's rows (`none` is the base model, `X
(pre-RL)` the SFT model an RL run started from: it is quoted from the paper's row of `X`, since an SFT-only run
gives the same model); runs evaluated with another prompt than `original` are quoted from `<label>
[eval.prompt=<prompt>]` only. A cell the paper contradicts elsewhere carries a mark, explained under the table.

Two layouts (skillexp/eval/paper.py): a row per method and a column per variant or average (the default), or a
row per task and, per method, a column per measure (`measures`: SkillFactory's budget-forcing and skill-use
tables). Cell values: paper_cells.py.
"""
from __future__ import annotations

from typing import Any

from skillexp.report.paper_cells import (Footnotes, cell, column_values, measure_values, paper_key, prompt_suffix,
                                         requirement_gaps)
from skillexp.report.tables import Row

FIDELITY = "docs/fidelity.md in the skillexp checkout"


def arrange(rows: list[Row], quoted: dict[str, Any], suffix: str,
            unquoted: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str, Row | None]]:
    """(label shown, paper row key or "", our row or None): the paper's rows in its order, each with the report
    rows it quotes (or alone), then the rows it has but prints no number for (`unquoted`), then the report rows it
    does not have."""
    keyed = [(paper_key(r.label, suffix), r) for r in rows]
    out: list[tuple[str, str, Row | None]] = []
    for key in [*quoted, *(k for k in unquoted if k not in quoted)]:
        mine = [r for k, r in keyed if k == key]
        out += [(r.label + suffix, key, r) for r in mine] or [(key, key, None)]
    return out + [(r.label + suffix, "", r) for k, r in keyed if k not in quoted and k not in unquoted]


def _legend(spec: dict[str, Any], model: str, quoted: bool, seeds: int, gaps: list[str]) -> list[str]:
    unit = ("Accuracy % (each column's metric is named in the suite's config)" if spec.get("percent", True) else
            "Each metric on its own scale (named in the suite's config)")
    lines = ["", f"{unit}, mean" + (" ± std over seeds" if seeds > 1 else "") + "."
             + (f" `paper X (±d)`: the paper's number for `{model}` and the difference ours − paper; `–`: none."
                if quoted else f" The suite quotes no paper numbers for `{model}`."), ""]
    if gaps:
        lines += [f"Our cells need runs with {' and '.join(gaps)}: this section shows the paper's numbers only.", ""]
    if spec.get("note"):
        lines += [str(spec["note"]), ""]
    return lines


def methods_table(rows: list[Row], spec: dict[str, Any], model: str, suffix: str, usable: bool,
                  notes: Footnotes) -> list[str]:
    """A row per method, a column per `columns` entry."""
    columns = list(spec.get("columns") or [])
    names = [c["name"] for c in columns]
    quoted = (spec.get("numbers") or {}).get(model) or {}
    paper_names = spec.get("names") or {}
    named = bool(quoted and paper_names)
    digits = 1 if spec.get("percent", True) else 2
    head = ["method", *(["paper's row"] if named else []), *names]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    unquoted = (spec.get("unquoted") or {}).get(model, []) if quoted else []
    for shown, key, row in arrange(rows, quoted, suffix, unquoted):
        per_run = [column_values(r, row.prefix, columns, "score", spec.get("percent", True))
                   for r in row.runs] if row is not None and usable else []
        paper = quoted.get(key)
        cells = []
        for i, name in enumerate(names):
            value = None if paper is None else paper[i]
            mark = notes.mark(key, name, None, value)
            cells.append(cell([v[name] for v in per_run if v[name] is not None], value, digits, mark))
        lines.append("| " + " | ".join([shown, *([paper_names.get(key, "")] if named else []), *cells]) + " |")
    return lines


def tasks_table(rows: list[Row], spec: dict[str, Any], model: str, suffix: str, usable: bool,
                notes: Footnotes) -> list[str]:
    """A row per `columns` entry (a task) and, per method, a column per measure: the methods the paper quotes for
    the model, in its order (all our rows where it quotes none)."""
    columns, measures = list(spec.get("columns") or []), list(spec.get("measures") or [])
    quoted = (spec.get("numbers") or {}).get(model) or {}
    paper_names = spec.get("names") or {}
    percent = spec.get("percent", True)
    if quoted:
        keyed = [(paper_key(r.label, suffix), r) for r in rows]
        groups = [(key, key, next((r for k, r in keyed if k == key), None)) for key in quoted]
    else:
        groups = [(r.label + suffix, "", r) for r in rows]
    values = {shown: [measure_values(r, row.prefix, columns, measures, percent) for r in row.runs]
              for shown, _, row in groups if row is not None and usable}
    head = ["task", *(f"{paper_names.get(key) or shown} · {m['name']}" for shown, key, _ in groups for m in measures)]
    lines = ["Methods: " + "; ".join(f"{paper_names.get(key) or shown} = `{shown}`"
                                     + (f" (ours: `{row.label + suffix}`)" if row and row.label + suffix != shown
                                        else "") for shown, key, row in groups) + ".", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for i, col in enumerate(columns):
        cells = []
        for shown, key, _ in groups:
            for j, m in enumerate(measures):
                paper = quoted[key][i][j] if key else None
                ours = [v[(col["name"], m["name"])] for v in values.get(shown, [])]
                cells.append(cell([x for x in ours if x is not None], paper, 1 if percent else 2,
                                  notes.mark(key, col["name"], m["name"], paper)))
        lines.append(f"| {col['name']} | " + " | ".join(cells) + " |")
    return lines


def paper_table(rows: list[Row], spec: dict[str, Any], model: str, eval_config: dict[str, Any]) -> list[str]:
    """Markdown lines: the title, the table, what its cells mean, the marked cells' notes and the fidelity page."""
    gaps = requirement_gaps(spec, eval_config)
    suffix = prompt_suffix(eval_config)
    notes = Footnotes(spec, model)
    layout = tasks_table if spec.get("measures") else methods_table
    table = layout(rows, spec, model, suffix, not gaps, notes)
    quoted = bool((spec.get("numbers") or {}).get(model))
    seeds = max((len(r.runs) for r in rows), default=0)
    return [f"### {spec.get('title') or 'Paper table'}", "", *table, *_legend(spec, model, quoted, seeds, gaps),
            *notes.lines(),
            f"Where this recipe's protocol differs from the paper's, and where the paper is silent: {FIDELITY}.", ""]


def paper_section(rows: list[Row], paper_model: str | None = None) -> list[str]:
    """The paper-layout tables of a setting's runs, one per table of their eval suite's `paper:` block, beside the
    paper's numbers for the runs' model, or for `paper_model` (`skillexp report --paper-model`: a CPU twin's tiny
    model against the paper's model, said so above each table)."""
    if not rows or not rows[0].runs:
        return []
    config = rows[0].runs[0].config
    tables = config["eval"].get("paper") or {}
    ours = config["model"]["name"]
    model = paper_model or ours
    said = ([f"Ours are `{ours}`'s; the paper's numbers are for `{model}` (`--paper-model`): the layout and the rows "
             "are the paper's, the comparison is not a like-for-like one.", ""] if model != ours else [])
    return [line for spec in tables.values() if spec.get("columns")
            for line in [*said, *paper_table(rows, spec, model, config["eval"])]]
