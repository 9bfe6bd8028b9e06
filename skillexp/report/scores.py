"""Per-question scores of a run's evals, read back from `<run dir>/{eval,pre_rl}/generations/<variant>.jsonl`.

The eval stage writes one line per sample (`item_id`, `question`, `sample`, `greedy`, `score`, `finish_reason`...,
skillexp/eval/stage.py). From them this module rebuilds, per question, the value whose mean over questions is the
run's summary metric: mean@k (the mean of the k sampled scores), pass@p (unbiased, a sample counting as correct
at score 1), greedy (the greedy sample's score), truncation_rate (the share of samples stopped by the length
limit) and no_answer_rate (the share in which the task found no answer where its prompt asked for one). A run's
per-question scores are used only when their mean reproduces its summary.json value, so a stage dir that is gone
(a cleaned stage cache), older or from another eval falls back to the pooled count.
"""
from __future__ import annotations

import functools
import json
import re
import statistics
from pathlib import Path

from skillexp.eval.metrics import pass_at_k
from skillexp.report.collect import Run

# shares of counted outcomes
PROPORTION = re.compile(r"^(mean@\d+(_unforced)?|pass@\d+|greedy|truncation_rate|no_answer_rate)$")
UNIT_BOUNDED = ("verdict_correct_f1", "verdict_incorrect_f1")  # inside [0, 1], but not a share of a count
NONNEGATIVE = re.compile(r"^(answers_per_completion|reflections_per_completion|mean_tokens|num_items)$")  # counts
TOLERANCE = 1e-6
Question = tuple[str, str]  # (item_id, question): how items are matched across runs


def is_proportion(metric: str) -> bool:
    """Accuracy-like metrics: a mean of per-question shares in [0, 1], so their intervals must stay in [0, 1]."""
    return bool(PROPORTION.match(metric))


def stage_dir(run: Run, prefix: str) -> Path:
    """The eval output of the final eval (prefix "") or of the eval before RL ("pre_rl/")."""
    return run.path / ("pre_rl" if prefix else "eval")


# per question its samples' (score, truncated, no answer found), and its greedy score
Samples = tuple[dict[Question, list[tuple[float, bool, bool]]], dict[Question, float]]


def _samples(path: Path) -> Samples | None:
    """(sampled, greedy) of one generations file: per question its samples' (score, truncated) in sample order,
    and its greedy score; None when the file is missing or unreadable."""
    try:
        return _read_samples(path, path.stat().st_mtime_ns)
    except OSError:
        return None


@functools.lru_cache(maxsize=128)
def _read_samples(path: Path, mtime_ns: int) -> Samples | None:
    """`_samples`, read once per version of the file (every cell and comparison of a report asks again)."""
    sampled: dict[Question, list[tuple[int, float, bool, bool]]] = {}
    greedy: dict[Question, float] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                key = (str(row.get("item_id")), str(row["question"]))
                if row.get("greedy"):
                    greedy[key] = float(row["score"])
                else:
                    sampled.setdefault(key, []).append((int(row.get("sample", 0)), float(row["score"]),
                                                        row.get("finish_reason") == "length",
                                                        row.get("extracted") is None))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {k: [(s, t, n) for _, s, t, n in sorted(v)] for k, v in sampled.items()}, greedy


def _per_question(path: Path, metric: str) -> dict[Question, float] | None:
    loaded = _samples(path)
    if loaded is None:
        return None
    sampled, greedy = loaded
    if metric == "greedy":
        return dict(greedy) or None
    if not sampled:
        return None
    if m := re.fullmatch(r"mean@(\d+)", metric):
        k = int(m.group(1))
        if any(len(v) != k for v in sampled.values()):
            return None
        return {q: statistics.fmean(s for s, _, _ in v) for q, v in sampled.items()}
    if m := re.fullmatch(r"pass@(\d+)", metric):
        p = int(m.group(1))
        if any(len(v) < p for v in sampled.values()):
            return None
        return {q: pass_at_k(len(v), sum(s >= 1.0 for s, _, _ in v), p) for q, v in sampled.items()}
    if metric == "truncation_rate":
        return {q: statistics.fmean(float(t) for _, t, _ in v) for q, v in sampled.items()}
    if metric == "no_answer_rate":
        return {q: statistics.fmean(float(n) for _, _, n in v) for q, v in sampled.items()}
    return None  # e.g. mean@k_unforced: the samples before budget forcing are not in the file


def question_scores(run: Run, prefix: str, variant: str, metric: str) -> dict[Question, float] | None:
    """Question -> its value of `metric` (resolved: "mean@4", not "mean@k") in this run's eval of `variant`;
    None when the generations are missing or do not reproduce the run's summary value."""
    scores = _per_question(stage_dir(run, prefix) / "generations" / f"{variant}.jsonl", metric)
    summary = run.summary.get(f"{prefix}{variant}/{metric}")
    if not scores or summary is None or abs(statistics.fmean(scores.values()) - float(summary)) > TOLERANCE:
        return None
    return scores


def pooled_count(run: Run, prefix: str, variant: str, metric: str) -> float | None:
    """How many scored outcomes a proportion metric of this run's `variant` averages: questions × samples for
    mean@k, truncation_rate and no_answer_rate, questions for pass@p and greedy (one outcome per question); None
    if unknown."""
    questions = run.summary.get(f"{prefix}{variant}/num_items")
    if questions is None or not is_proportion(metric):
        return None
    per_question = int(metric.split("@")[1].split("_")[0]) if metric.startswith("mean@") else (
        int(run.config["eval"]["k"]) if metric in ("truncation_rate", "no_answer_rate") else 1)
    return float(questions) * per_question


def total_count(runs: list[Run], prefix: str, variants: list[str], metric: str) -> float | None:
    """The pooled count of `runs` over `variants` (seeds × variants × questions × samples); None if one is
    unknown."""
    counts = [pooled_count(r, prefix, v, metric) for r in runs for v in variants]
    return None if not counts or any(c is None for c in counts) else sum(c for c in counts if c is not None)
