"""The schema of a suite's `paper:` block (report only): a paper's table, with its numbers, as the report lays it
out beside ours, and the start-up checks that name the key and the fix.

Two layouts. By default a row per method (report row label) and a column per `columns` entry, as SkillFactory's
Tables 2, 5-11 and STAT's Table 3. With `measures`, as SkillFactory's Tables 3 (budget forcing) and 4 (skill use): a
row per `columns` entry (a task) and, per method, a column per measure (Std, BF, Δ; #Ans, #Ref, F1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skillexp.utils.schema import ConfigError


@dataclass
class PaperColumn:
    """One column of a paper's table (in a table with `measures`, one of its rows): one variant's value, the mean
    of several variants' (`variants`), the mean of earlier columns (`average`), or, with none of these, a column the
    suite does not measure, shown with the paper's number alone."""

    name: str  # as the paper heads it: "CD4", "AIME24", "OOD avg"
    variant: str | None = None
    variants: list[str] | None = None
    average: list[str] | None = None


@dataclass
class PaperMeasure:
    """A sub-column under each method of a table laid out with a row per task: a per-variant metric of the runs'
    summaries (`mean@k`: k the variant's samples) or the difference of two earlier measures (`difference: [BF,
    Std]` is BF minus Std)."""

    name: str
    metric: str | None = None
    difference: list[str] | None = None


@dataclass
class PaperCellNote:
    """A quoted cell the paper contradicts elsewhere, or prints oddly: the report marks the cell and prints `note`
    under the table, with `alternative`, the value the paper prints for the same cell elsewhere."""

    model: str
    row: str  # a report row label in `numbers`
    column: str  # a column name
    note: str
    measure: str | None = None  # a measure name, in a table with measures
    alternative: float | None = None


Quote = list[float | None] | list[list[float | None]]


@dataclass
class PaperTable:
    """The `paper:` block of a suite: the table the report lays out as the paper does, with the paper's numbers."""

    title: str
    columns: list[PaperColumn]
    # the paper's numbers (in column order; null where it has none): model name -> report row label (`none` = base
    # model, `skillfactory → grpo`, `stat_sel` = SFT alone, also its `(pre-RL)` row; a run evaluated with a prompt
    # other than `original` as `<label> [eval.prompt=<prompt>]`) -> values; with measures, one list per column
    numbers: dict[str, dict[str, Quote]] = field(default_factory=dict)
    note: str | None = None  # what a reader must know (the paper's settings we could not match)
    names: dict[str, str] = field(default_factory=dict)  # report row label -> the paper's name for that row
    # model -> rows of the paper's comparison whose numbers its text does not print (SkillFactory's BOLT): named
    # in `names`, shown after that model's quoted rows with ours alone
    unquoted: dict[str, list[str]] = field(default_factory=dict)
    # non-empty: the paper's table has a row per column and, per method, a column per measure
    measures: list[PaperMeasure] = field(default_factory=list)
    percent: bool = True  # the metrics are fractions shown as percent; false: on their own scale
    cell_notes: list[PaperCellNote] = field(default_factory=list)
    # dotted eval settings our runs need for their cells (budget forcing on or off); other runs show the paper's
    requires: dict[str, Any] = field(default_factory=dict)


def check_paper(where: str, table: PaperTable, suite: Any) -> None:
    """Refuse a `paper:` block whose columns, numbers, names, notes or requirements do not fit `suite` (an
    EvalConfig), naming the key (`where` is the block's, e.g. `eval.paper.table6`) and the fix."""
    variants = sorted(suite.variants)
    seen: list[str] = []
    for i, col in enumerate(table.columns):
        at = f"{where}.columns[{i}] ({col.name})"
        if sum(x is not None for x in (col.variant, col.variants, col.average)) > 1:
            raise ConfigError(f"{at}: give `variant` (one of {variants}), `variants` (a list of them) or `average` "
                              f"(names of earlier columns): only one of them (none: a column we do not measure).")
        if bad := [v for v in ([col.variant] if col.variant is not None else col.variants or []) if v not in variants]:
            raise ConfigError(f"{at}: variant {bad[0]!r} is not in eval.variants ({variants}).")
        if bad := [c for c in col.average or [] if c not in seen]:
            raise ConfigError(f"{at}: average names {bad}, which are not earlier columns ({seen}).")
        if col.name in seen:
            raise ConfigError(f"{at}: a second column named {col.name!r}: give each column its own name.")
        seen.append(col.name)
    measures: list[str] = []
    for i, m in enumerate(table.measures):
        at = f"{where}.measures[{i}] ({m.name})"
        if (m.metric is None) == (m.difference is None):
            raise ConfigError(f"{at}: give `metric` (a per-variant summary key such as mean@k) or `difference` "
                              f"(two earlier measures), one of them.")
        if m.difference is not None and (len(m.difference) != 2 or any(d not in measures for d in m.difference)):
            raise ConfigError(f"{at}: difference must name two earlier measures ({measures}), got {m.difference}.")
        measures.append(m.name)
    for model, rows in table.numbers.items():
        for label, values in rows.items():
            _check_quote(f"{where}.numbers.{model}.{label}", values, seen, measures)
    labels = {label for rows in table.numbers.values() for label in rows}
    for model, rows_ in table.unquoted.items():
        if bad := sorted(set(rows_) & set(table.numbers.get(model, {}))):
            raise ConfigError(f"{where}.unquoted.{model} has {bad}, which {where}.numbers.{model} quotes: list a "
                              f"row in one of them.")
    if bad := sorted(set(table.names) - labels - {r for rows_ in table.unquoted.values() for r in rows_}):
        raise ConfigError(f"{where}.names has {bad}, which no model's numbers quote: name rows of "
                          f"{where}.numbers ({sorted(labels)}) or of {where}.unquoted.")
    for i, n in enumerate(table.cell_notes):
        _check_note(f"{where}.cell_notes[{i}]", n, table, seen, measures)
    for key, value in table.requires.items():
        _check_requirement(f"{where}.requires.{key}", key, value, suite)


def _check_quote(at: str, values: Any, columns: list[str], measures: list[str]) -> None:
    if len(values) != len(columns):
        raise ConfigError(f"{at} has {len(values)} values for {len(columns)} columns ({columns}); write null where "
                          f"the paper has none.")
    for column, value in zip(columns, values):
        if measures and (not isinstance(value, list) or len(value) != len(measures)):
            raise ConfigError(f"{at}: column {column!r} needs a list of {len(measures)} values, one per measure "
                              f"({measures}), got {value!r}; write null where the paper has none.")
        if not measures and isinstance(value, list):
            raise ConfigError(f"{at}: column {column!r} needs one number (this table has no measures), got "
                              f"{value!r}.")


def _check_note(at: str, note: PaperCellNote, table: PaperTable, columns: list[str], measures: list[str]) -> None:
    rows = table.numbers.get(note.model)
    if rows is None:
        raise ConfigError(f"{at}.model={note.model!r} has no numbers in this table: one of {sorted(table.numbers)}.")
    if note.row not in rows:
        raise ConfigError(f"{at}.row={note.row!r} is not quoted for {note.model}: one of {sorted(rows)}.")
    if note.column not in columns:
        raise ConfigError(f"{at}.column={note.column!r} is not a column: one of {columns}.")
    if measures and note.measure not in measures:
        raise ConfigError(f"{at}.measure={note.measure!r}: this table's cells need a measure, one of {measures}.")
    if not measures and note.measure is not None:
        raise ConfigError(f"{at}.measure={note.measure!r}: this table has no measures; leave it out.")


def _check_requirement(at: str, key: str, value: Any, suite: Any) -> None:
    node = suite
    for part in key.split("."):
        if not hasattr(node, part):
            raise ConfigError(f"{at}: {key!r} is not an eval setting; name one as a dotted key of eval (e.g. "
                              f"budget_forcing.enabled).")
        node = getattr(node, part)
    if isinstance(node, (dict, list)) or hasattr(node, "__dataclass_fields__"):
        raise ConfigError(f"{at}: {key!r} is a group of settings; name one setting in it.")
    numbers = (int, float)
    if isinstance(node, bool) != isinstance(value, bool) or not (
            type(value) is type(node) or isinstance(node, numbers) and isinstance(value, numbers)):
        raise ConfigError(f"{at}={value!r} is not a {type(node).__name__} like eval.{key} ({node!r}).")
