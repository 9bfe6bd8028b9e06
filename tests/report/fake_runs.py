"""Run dirs as the pipeline writes them (config.yaml from the real composed config, summary.json, metrics.jsonl,
and with `samples` the evals' generations), with chosen numbers, so report tests can check statistics against
values computed by hand."""
from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from skillexp.config import load_run_config
from skillexp.eval.metrics import variant_metrics
from tests.test_configs import _compose

K = 4
VARIANTS = ["countdown_3", "countdown_4", "countdown_5", "countdown_6", "multiplication_1", "multiplication_2",
            "multiplication_3"]  # eval=countdown_cpu's suite, in its order
Score = Callable[[str], float]
Samples = Callable[[str], list[list[float]]]  # variant -> per question, the scores of its K samples
SKILL = {"answers_per_completion": 1.0, "reflections_per_completion": 0.0, "verdict_correct_f1": 0.5,
         "verdict_incorrect_f1": 0.25}


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
            "truncation_rate": 0.1, "no_answer_rate": 0.05, "num_items": 3.0, "answers_per_completion": 1 + s,
            "reflections_per_completion": s,
            "verdict_correct_f1": 0.5, "verdict_incorrect_f1": 0.25}.items()})
    out[f"{prefix}avg/mean@{K}"] = sum(score(v) for v in VARIANTS) / len(VARIANTS)
    return out


def sampled_eval(stage_dir: Path, samples: Samples, prefix: str = "") -> dict[str, float]:
    """An eval as the eval stage writes it: generations/<variant>.jsonl (K sampled rows per question, a sample
    that scored 0 stopped by the length limit with no answer found, and a greedy row scoring like sample 0), and
    the metrics the eval stage computes from them (skillexp.eval.metrics), returned with `prefix`."""
    out: dict[str, float] = {}
    for v in VARIANTS:
        scores = samples(v)
        truncated = [[s == 0 for s in row] for row in scores]
        rows = [{"variant": v, "item_id": f"{v}-{i}", "sample": j, "greedy": greedy, "question": f"question {i}",
                 "gold": "1", "completion": "...", "extracted": None if s == 0 and not greedy else "1", "score": s,
                 "num_tokens": 100,
                 "finish_reason": "length" if s == 0 and not greedy else "stop"}
                for i, row in enumerate(scores) for greedy, samples_ in ((False, row), (True, row[:1]))
                for j, s in enumerate(samples_)]
        (stage_dir / "generations").mkdir(parents=True, exist_ok=True)
        (stage_dir / "generations" / f"{v}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        metrics = {**variant_metrics(scores, [[100] * len(r) for r in scores], truncated, [1, K],
                                     [r[0] for r in scores]), **SKILL,
                   "no_answer_rate": sum(map(sum, truncated)) / sum(map(len, truncated))}
        out.update({f"{prefix}{v}/{key}": value for key, value in metrics.items()})
    out[f"{prefix}avg/mean@{K}"] = sum(out[f"{prefix}{v}/mean@{K}"] for v in VARIANTS) / len(VARIANTS)
    return out


def make_run(run_dir: Path, *, method: str = "sft", rl: str = "none", seed: int = 0, score: Score = lambda v: 0.0,
             pre_score: Score | None = None, samples: Samples | None = None, pre_samples: Samples | None = None,
             rewards: list[float] | None = None, extra: tuple[str, ...] = (), finished: bool = True) -> Path:
    """One run dir; `pre_score` (RL runs) is the eval before RL, `rewards` the rl/reward_mean of steps 1, 2, ...
    With `samples` (and `pre_samples`) the evals come from per-question scores, with their generations."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_yaml((f"method={method}", f"rl={rl}", f"seed={seed}", *extra)))
    summary: dict[str, float] = {}
    lines = []
    if rl != "none":
        pre = pre_samples or samples
        summary.update(sampled_eval(run_dir / "pre_rl", pre, "pre_rl/") if pre else
                       eval_metrics(pre_score or score, "pre_rl/"))
        lines.append({"step": None, **summary})
        lines += [{"step": step, "rl/reward_mean": r, "rl/reward_std": 0.1, "rl/loss": 0.0}
                  for step, r in enumerate(rewards or [], start=1)]
    final = sampled_eval(run_dir / "eval", samples) if samples else eval_metrics(score)
    lines.append({"step": None, **final})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"time": 0.0, **row}) + "\n" for row in lines))
    if finished:
        (run_dir / "eval_metrics.json").write_text(json.dumps(final))
        (run_dir / "summary.json").write_text(json.dumps({**summary, **final}, indent=2, sort_keys=True))
    return run_dir
