"""Paired comparisons: each row of a setting against a baseline method's row, on the same seeds and questions.

The baseline row of a row is the row of method `baseline` (`--baseline`, default `none`) after the same RL stage:
`skillfactory → grpo` against `none → grpo`; rows without RL (a method alone, or an RL run's pre-RL eval) against
the baseline without RL (its own row if there is one, else its pre-RL row: for `none`, both are the base model).

Pairing: the seeds both rows have; within a seed and a task variant, the questions both evals scored (matched by
item id and question text). The difference is the mean over seeds of the mean over variants of the mean over
questions of (row − baseline), and its 95% interval the two-level bootstrap of stats.py over these per-question
differences: a resampled seed brings both rows' runs of that seed, a resampled question both rows' scores on it.
Without per-question scores for every seed the difference is that of the summary values over the seeds both rows
have; its interval for accuracies is Newcombe's for two proportions from the pooled counts (unpaired, and taking
every sample as independent, so it ignores how much seeds and questions differ), for other metrics the t interval
over the per-seed differences (none from a single seed).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from skillexp.report.scores import question_scores, total_count
from skillexp.report.stats import hierarchical_bootstrap, newcombe, summarize
from skillexp.report.tables import AVG, MARKS, Row, resolve_metric, run_value

FEW_SEEDS = 5  # fewer seeds than this: the seed level of the bootstrap has too little to resample
COLUMNS = ["row", "baseline", "variant", "metric", "diff", "ci95_low", "ci95_high", "ci95_method", "seeds",
           "questions"]


@dataclass(frozen=True)
class Comparison:
    row: Row
    baseline: Row
    variant: str  # a task variant or AVG
    metric: str  # resolved: "mean@4"
    diff: float
    low: float | None
    high: float | None
    interval: str | None  # "bootstrap" (paired seeds and questions), "newcombe", "t" (over seeds) or None
    seeds: tuple[int, ...]
    questions: tuple[int, ...] = ()  # matched questions per seed (over all variants for AVG); () without scores


def rl_stage(row: Row) -> str:
    """The RL stage a row's model went through; "" for none (a method alone, or an RL run's pre-RL eval)."""
    return "" if row.prefix or row.rl == "none" else row.rl


def baseline_row(row: Row, rows: list[Row], baseline: str) -> Row | None:
    """The row `row` is compared with: method `baseline`, same RL stage, preferably the same eval (final/pre-RL)."""
    if row.method == baseline:
        return None
    candidates = [r for r in rows if r.method == baseline and rl_stage(r) == rl_stage(row)]
    return min(candidates, key=lambda r: r.prefix != row.prefix, default=None)


def _question_differences(row: Row, base: Row, pairs: list[tuple], variants: list[str],
                          metric: str) -> list[list[list[float]]] | None:
    """Per paired seed, per variant: the matched questions' score differences; None if any are missing."""
    out = []
    for run, base_run in pairs:
        per_variant = []
        for variant in variants:
            a = question_scores(run, row.prefix, variant, metric)
            b = question_scores(base_run, base.prefix, variant, metric)
            common = [q for q in a if q in b] if a and b else []
            if not common:
                return None
            per_variant.append([a[q] - b[q] for q in common])
        out.append(per_variant)
    return out


def compare(row: Row, base: Row, variant: str, variants: list[str], metric: str) -> Comparison | None:
    """`row` − `base` on `variant` (AVG: over `variants`) as the module docstring says; None without pairs."""
    base_runs = {r.seed: r for r in base.runs}
    pairs = [(r, base_runs[r.seed]) for r in row.runs if r.seed in base_runs]
    resolved = resolve_metric(metric, row.runs[0])
    diffs = _question_differences(row, base, pairs, variants if variant == AVG else [variant], resolved)
    if pairs and diffs:
        estimate, low, high = hierarchical_bootstrap(diffs)
        return Comparison(row, base, variant, resolved, estimate, low, high, "bootstrap",
                          tuple(r.seed for r, _ in pairs), tuple(sum(map(len, seed)) for seed in diffs))
    values = [(r, base_run, a, b) for r, base_run in pairs
              if (a := run_value(r, row.prefix, variant, metric, variants)) is not None
              and (b := run_value(base_run, base.prefix, variant, metric, variants)) is not None]
    if not values:
        return None
    seeds = tuple(r.seed for r, *_ in values)
    diff = statistics.fmean(a - b for *_, a, b in values)
    columns = variants if variant == AVG else [variant]
    n_row = total_count([r for r, *_ in values], row.prefix, columns, resolved)
    n_base = total_count([b for _, b, *_ in values], base.prefix, columns, resolved)
    p_row, p_base = statistics.fmean(a for *_, a, _ in values), statistics.fmean(b for *_, b in values)
    if n_row and n_base and 0.0 <= min(p_row, p_base) and max(p_row, p_base) <= 1.0:
        low, high = newcombe(p_row * n_row, n_row, p_base * n_base, n_base)
        return Comparison(row, base, variant, resolved, diff, low, high, "newcombe", seeds)
    stats = summarize([a - b for *_, a, b in values])
    assert stats is not None
    return Comparison(row, base, variant, resolved, diff, stats.ci_low, stats.ci_high, stats.interval, seeds)


def compare_rows(rows: list[Row], variants: list[str], metric: str, baseline: str) -> tuple[list[Comparison],
                                                                                             list[Row]]:
    """Every row with a baseline row against it, per variant and AVG; and the rows that have no baseline row."""
    comparisons, unmatched = [], []
    for row in rows:
        base = baseline_row(row, rows, baseline)
        if base is None:
            if row.method != baseline:
                unmatched.append(row)
            continue
        comparisons += [c for v in [*variants, AVG] if (c := compare(row, base, v, variants, metric)) is not None]
    return comparisons, unmatched


def signed(x: float) -> str:
    return f"{x:+.3f}".replace("-", "−")


def _size(c: Comparison) -> str:
    n = len(c.seeds)
    seeds = f"{n} seed{'' if n == 1 else 's'}"
    if c.interval == "bootstrap":
        lo, hi = min(c.questions), max(c.questions)
        return f"{seeds} × {lo if lo == hi else f'{lo}–{hi}'} questions"
    return f"{seeds} (no per-question scores: " + (
        "pooled counts, unpaired, samples taken as independent)" if c.interval == "newcombe" else
        "paired by seed only)")


def sentence(c: Comparison) -> str:
    """What this comparison can and cannot support, in one plain sentence."""
    head = f"{c.row.label} vs {c.baseline.label} on {c.variant}"
    if c.low is None or c.high is None:
        return (f"{head}: {signed(c.diff)} from {_size(c)}, with no interval from one seed: this data cannot say "
                "whether they differ.")
    if c.interval == "bootstrap" and c.low == c.high == 0:
        return f"{head}: the same score on every paired question over {_size(c)}, so this data shows no difference."
    numbers = f"[{signed(c.low)}, {signed(c.high)}] over {_size(c)}"
    if c.low <= 0 <= c.high:
        return f"{head}: {signed(c.diff)} {numbers}: the interval includes 0, so this data cannot tell them apart."
    n = len(c.seeds)
    caveat = ("with one seed it covers the choice of questions only, not seed-to-seed variation" if n == 1 else
              f"with only {n} seeds it says little about other seeds" if n < FEW_SEEDS else
              "other tasks, models or eval sets may differ")
    return (f"{head}: {'higher' if c.diff > 0 else 'lower'} by {abs(c.diff):.3f} {numbers}: the interval excludes "
            f"0, so the data supports a difference on these questions; {caveat}.")


def fmt(c: Comparison | None) -> str:
    if c is None:
        return "–"
    interval = "" if c.interval is None else f" [{signed(c.low)}, {signed(c.high)}]{MARKS[c.interval]}"
    questions = f"×{min(c.questions)}" if c.questions else ""
    return f"{signed(c.diff)}{interval} n={len(c.seeds)}{questions}"


def markdown(comparisons: list[Comparison], unmatched: list[Row], columns: list[str], baseline: str) -> list[str]:
    """The comparisons section of a setting: the differences as a table, then one sentence per comparison."""
    if not comparisons and not unmatched:
        return []
    metric = comparisons[0].metric if comparisons else ""
    lines = [f"### Paired comparisons with `{baseline}`" + (f" ({metric})" if metric else ""), ""]
    if comparisons:
        pairs = list(dict.fromkeys((c.row.label, c.baseline.label) for c in comparisons))
        grid = {(c.row.label, c.baseline.label, c.variant): c for c in comparisons}
        lines += [f"Each row minus its `{baseline}` row after the same RL stage, on the same seeds and questions: "
                  "mean difference [95% interval] n=seeds×questions per seed. ᵇ paired two-level bootstrap over "
                  "seeds and questions; where per-question scores are missing: ⁿ Newcombe's interval for two "
                  "proportions from the pooled counts (unpaired, every sample taken as independent: too narrow "
                  "when seeds or questions differ), ᵗ t interval over the per-seed differences.", "",
                  f"| comparison | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {row} − {base} | " + " | ".join(fmt(grid.get((row, base, v))) for v in columns) + " |"
                  for row, base in pairs]
        lines += ["", *[f"- {sentence(c)}" for c in comparisons]]
    if unmatched:
        lines += ["", f"No `{baseline}` row after the same RL stage to compare with: "
                  + ", ".join(f"`{r.label}`" for r in unmatched) + "."]
    return lines + [""]


def csv_rows(comparisons: list[Comparison], setting: tuple[tuple[str, str], ...]) -> list[list[str]]:
    """One row per comparison (COLUMNS), led by the setting's values; empty fields where there is no interval."""
    out = []
    for c in comparisons:
        fields = [c.row.label, c.baseline.label, c.variant, c.metric, c.diff, c.low, c.high, c.interval,
                  " ".join(map(str, c.seeds)), " ".join(map(str, c.questions))]
        out.append([v for _, v in setting] + ["" if f is None else str(f) for f in fields])
    return out
