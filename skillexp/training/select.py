"""The sft_select stage: STAT's choice of the SFT learning rate (`method.sft.lr_search`, App. C.1).

Each learning rate of the grid trained its own sft stage and had its model evaluated on the eval suite's val split
(an eval stage each, so a killed search resumes where it stopped and a later run reuses every candidate). This stage
reads their scores, names the best, and publishes that model as its own output (hard links, so that cleaning the
candidates from the cache leaves it whole): what follows (the eval before RL, GRPO, the eval) starts from it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from skillexp.runtime import Runtime
from skillexp.stage_cache import Artifact, StageInputs
from skillexp.stages import Stage, register
from skillexp.utils.io import atomic_write_json

log = logging.getLogger(__name__)
SELECTION = "selection.json"
SCORE = "avg/score"  # the eval stage's mean headline metric over the suite's variants (eval/stage.py)


@dataclass(frozen=True)
class Candidate:
    """One learning rate of the grid: the model its sft stage trained, and the metrics file of its val eval."""

    lr: float
    model: Artifact
    val: Artifact


@dataclass(frozen=True)
class SFTSelectInputs(StageInputs):
    """The sft_select stage: the best of `candidates` by their val eval's `avg/score` (the first in grid order on a
    tie; a candidate whose score is not a number never wins)."""

    STAGE: ClassVar[str] = "sft_select"
    VERSION: ClassVar[int] = 1

    candidates: tuple[Candidate, ...]


def lr_name(lr: float) -> str:
    """How a learning rate names its candidate: in stage links, metric keys and the selection record."""
    return f"{lr:g}"


def val_score(metrics: Path) -> float:
    """A val eval's mean headline score, from its metrics file (NaN when it has none)."""
    value = json.loads(Path(metrics).read_text()).get(SCORE)
    return float(value) if isinstance(value, (int, float)) else math.nan


def choose(scores: list[tuple[float, float]]) -> float:
    """The lr of the best (lr, score) pair: the highest score, the first on a tie; NaN scores never win (all NaN:
    the first lr)."""
    best_lr, best = scores[0][0], -math.inf
    for lr, score in scores:
        if not math.isnan(score) and score > best:
            best_lr, best = lr, score
    return best_lr


def link_tree(src: Path, dst: Path) -> None:
    """`dst` as a copy of the directory `src` made of hard links (a plain copy where the file system has none)."""
    if dst.exists():
        shutil.rmtree(dst)

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


def select_stage(inputs: SFTSelectInputs, out_dir: Path, rt: Runtime) -> None:
    """Write the chosen model to `out_dir/model` and the scores with the choice to `out_dir/selection.json`."""
    scores = [(c.lr, val_score(Path(c.val.path))) for c in inputs.candidates]
    lr = choose(scores)
    chosen = next(c for c in inputs.candidates if c.lr == lr)
    out_dir.mkdir(parents=True, exist_ok=True)
    link_tree(Path(chosen.model.path), out_dir / "model")
    atomic_write_json(out_dir / SELECTION, {"metric": SCORE, "split": "val", "chosen_lr": lr,  # grid order
                                            "scores": [{"lr": a, "score": s} for a, s in scores]})
    _replay(inputs, out_dir, rt)


def read_selection(out_dir: Path) -> dict[str, Any]:
    """The record `select_stage` wrote."""
    return json.loads((Path(out_dir) / SELECTION).read_text())


def selection_metrics(inputs: SFTSelectInputs, out_dir: Path, rt: Runtime) -> dict[str, float]:
    """What a run logs of a selection: the chosen lr (`sft_select/lr`, in summary.json for the report) and each lr's
    val score."""
    record = read_selection(out_dir)
    out = {"sft_select/lr": float(record["chosen_lr"])}
    out.update({f"sft_select/{lr_name(s['lr'])}/val_score": s["score"] for s in record["scores"]})
    return out


def _replay(inputs: SFTSelectInputs, out_dir: Path, rt: Runtime) -> None:
    record = read_selection(out_dir)
    log.info("SFT learning rate chosen on the val split: %s (%s: %s)", lr_name(record["chosen_lr"]), record["metric"],
             ", ".join(f"lr {lr_name(s['lr'])} {s['score']:.3f}" for s in record["scores"]))
    rt.tracker.log(selection_metrics(inputs, out_dir, rt))


register(Stage(SFTSelectInputs, select_stage, output="model", summary=selection_metrics, replay=_replay))
