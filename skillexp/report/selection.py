"""The SFT learning rate each run chose on validation (`method.sft.lr_search`, training/select.py), per report row:
STAT picks the lr per method from a grid, so a reader of its rows must see which lr each one trained at."""
from __future__ import annotations

from statistics import mean
from typing import Protocol, Sequence

from skillexp.report.collect import Run

CHOSEN = "sft_select/lr"  # summary.json's chosen lr (training/select.py:selection_metrics)
SCORE_PREFIX, SCORE_SUFFIX = "sft_select/", "/val_score"


class _Row(Protocol):
    label: str
    runs: list[Run]


def _scores(run: Run) -> dict[str, float]:
    """lr name -> its val score, as the run logged them."""
    return {k[len(SCORE_PREFIX):-len(SCORE_SUFFIX)]: v for k, v in run.summary.items()
            if k.startswith(SCORE_PREFIX) and k.endswith(SCORE_SUFFIX)}


def lr_section(rows: Sequence[_Row]) -> list[str]:
    """Markdown lines: for each row whose runs chose their SFT lr, the lr each seed chose and every lr's val score
    (mean over the row's seeds); no lines when no run searched."""
    searched = [(row, sorted((r for r in row.runs if CHOSEN in r.summary), key=lambda r: r.seed)) for row in rows]
    searched = [(row, runs) for row, runs in searched if runs]
    if not searched:
        return []
    md = ["### SFT learning rate chosen on validation", "",
          "Each run trained SFT at every lr of `method.sft.lr_search.grid`, evaluated each model on the val split and "
          "went on with the best (`selection.json` in the run's `sft_select` stage).", "",
          "| method | chosen lr (per seed) | val score per lr (mean over seeds) |", "|---|---|---|"]
    for row, runs in searched:
        chosen = ", ".join(f"s{r.seed}: {r.summary[CHOSEN]:g}" for r in runs)
        per_lr: dict[str, list[float]] = {}
        for r in runs:
            for lr, score in _scores(r).items():
                per_lr.setdefault(lr, []).append(score)
        scores = ", ".join(f"{lr}: {mean(v):.3f}" for lr, v in sorted(per_lr.items(), key=lambda kv: -float(kv[0])))
        md.append(f"| {row.label} | {chosen} | {scores} |")
    return md + [""]
