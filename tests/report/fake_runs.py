"""Run dirs as the pipeline writes them (config.yaml from the real composed config, summary.json, metrics.jsonl),
with chosen numbers, so report tests can check statistics against values computed by hand."""
from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from skillexp.config import load_run_config
from tests.test_configs import _compose

K = 4
VARIANTS = ["countdown_3", "countdown_4", "countdown_5", "countdown_6", "multiplication_1", "multiplication_2",
            "multiplication_3"]  # eval=countdown_cpu's suite, in its order
Score = Callable[[str], float]


@functools.cache
def config_yaml(overrides: tuple[str, ...]) -> str:
    """The resolved config.yaml the pipeline writes for these command-line overrides."""
    run = load_run_config(_compose(["model=tiny", "eval=countdown_cpu", f"eval.k={K}", *overrides]))
    return OmegaConf.to_yaml(OmegaConf.create(asdict(run)))


def eval_metrics(score: Score, prefix: str = "") -> dict[str, float]:
    """An eval's metrics with `mean@K` = score(variant) and the other metrics derived from it."""
    out: dict[str, float] = {}
    for v in VARIANTS:
        s = score(v)
        out.update({f"{prefix}{v}/{key}": value for key, value in {
            f"mean@{K}": s, "pass@1": s, f"pass@{K}": min(1.0, 2 * s), "greedy": s / 2, "mean_tokens": 100.0,
            "truncation_rate": 0.1, "num_items": 3.0, "answers_per_completion": 1 + s, "reflections_per_completion": s,
            "verdict_correct_f1": 0.5, "verdict_incorrect_f1": 0.25}.items()})
    out[f"{prefix}avg/mean@{K}"] = sum(score(v) for v in VARIANTS) / len(VARIANTS)
    return out


def make_run(run_dir: Path, *, method: str = "sft", rl: str = "none", seed: int = 0, score: Score = lambda v: 0.0,
             pre_score: Score | None = None, rewards: list[float] | None = None, extra: tuple[str, ...] = (),
             finished: bool = True) -> Path:
    """One run dir; `pre_score` (RL runs) is the eval before RL, `rewards` the rl/reward_mean of steps 1, 2, ..."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_yaml((f"method={method}", f"rl={rl}", f"seed={seed}", *extra)))
    summary: dict[str, float] = {}
    lines = []
    if rl != "none":
        summary.update(eval_metrics(pre_score or score, "pre_rl/"))
        lines.append({"step": None, **summary})
        lines += [{"step": step, "rl/reward_mean": r, "rl/reward_std": 0.1, "rl/loss": 0.0}
                  for step, r in enumerate(rewards or [], start=1)]
    final = eval_metrics(score)
    lines.append({"step": None, **final})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"time": 0.0, **row}) + "\n" for row in lines))
    if finished:
        (run_dir / "eval_metrics.json").write_text(json.dumps(final))
        (run_dir / "summary.json").write_text(json.dumps({**summary, **final}, indent=2, sort_keys=True))
    return run_dir
