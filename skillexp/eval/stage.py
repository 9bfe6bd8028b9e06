"""The eval stage: sample every variant of a suite, score with the tasks' own checkers, write metrics.

All variants' prompts go to the engine in one call, so vLLM batches across variants; scoring runs in worker
processes (math-verify needs a main thread, and model output gets a wall-clock bound).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from skillexp.eval.config import BudgetForcing, EvalConfig, EvalInputs, Protocol
from skillexp.eval.budget_forcing import force_budget
from skillexp.eval.metrics import variant_metrics
from skillexp.eval.skill_use import SkillUse
from skillexp.eval.subset import read_subset
from skillexp.generation.base import Completion, Generator, SamplingParams, render_chat
from skillexp.runtime import Runtime
from skillexp.stages import Stage, register
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScoringConfig
from skillexp.tracking import Tracker
from skillexp.utils.io import atomic_write_json, atomic_write_jsonl

log = logging.getLogger(__name__)


@dataclass
class _Variant:
    task: Task
    items: list[Item]
    protocol: Protocol
    start: int  # offset of this variant's prompts in the combined batch

    @property
    def span(self) -> range:
        return range(self.start, self.start + len(self.items))


def _build_variants(suite: EvalConfig, subsets: dict[str, set[str]]) -> dict[str, _Variant]:
    variants, start = {}, 0
    for name in suite.variants:
        variant = suite.variant(name)
        task, protocol = variant.task.build(name=name, path=f"eval.variants.{name}"), variant.protocol
        items = task.items(suite.split)
        if variant.subset is not None:
            if name not in subsets:
                raise ValueError(f"eval variant {name!r} is a subset of its questions, and its subset stage did not "
                                 f"run (only the pipeline runs it).")
            items = [it for it in items if it.id in subsets[name]]
        if protocol.num_items is not None:
            items = items[: protocol.num_items]
        if not items:
            raise ValueError(f"eval variant {name!r} has no items in split {suite.split!r}.")
        variants[name] = _Variant(task, items, protocol, start)
        start += len(items)
    return variants


def _rows(name: str, items: list[Item], comps: list[list[Completion]], scores: list[list[float]],
          task: Task, greedy: bool) -> list[dict]:
    rows = []
    for item, cs, ss in zip(items, comps, scores):
        for j, (c, s) in enumerate(zip(cs, ss)):
            rows.append({
                "variant": name, "item_id": item.id, "sample": j, "greedy": greedy, "question": item.question,
                "gold": item.answer, "completion": c.text, "extracted": task.extract(c.text), "score": s,
                "num_tokens": len(c.token_ids), "finish_reason": c.finish_reason,
            })
    return rows


def _sample(generator: Generator, prompts: list[list[int]], variants: dict[str, _Variant], seed: int,
            greedy: bool, bf: BudgetForcing | None = None
            ) -> tuple[dict[int, list[Completion]], dict[int, list[Completion]]]:
    """Completions by prompt index, before and after budget forcing (the same without `bf`). Variants that decode
    alike share one generate() call, so the engine batches across them; `greedy` samples one completion at
    temperature 0 for the variants that ask for it."""
    groups: dict[str, tuple[SamplingParams, list[int]]] = {}
    for v in variants.values():
        if greedy and not v.protocol.greedy:
            continue
        s = v.protocol.sampling
        params = s.params(1, seed, temperature=0.0) if greedy else s.params(v.protocol.k, seed)
        groups.setdefault(repr(params), (params, []))[1].extend(v.span)
    raw: dict[int, list[Completion]] = {}
    forced: dict[int, list[Completion]] = {}
    for params, idx in groups.values():
        batch = [prompts[i] for i in idx]
        comps = generator.generate(batch, params)
        raw.update(zip(idx, comps))
        if bf is not None:
            comps = force_budget(generator, batch, comps, params, bf.trigger, bf.max_total_tokens, bf.rounds)
        forced.update(zip(idx, comps))
    return raw, forced


METRICS = "eval_metrics.json"


def eval_stage(inputs: EvalInputs, out_dir: Path, rt: Runtime) -> None:
    """The eval stage: the suite on `inputs.model_dir`, sampled by the run's engine `rt.engine`, its metrics logged
    under `rt.prefix` (kept if a killed run already finished it in `out_dir`)."""
    if (out_dir / METRICS).exists():
        log.info("eval already done in %s; reusing it", out_dir)
        return
    if rt.engine is None:
        raise RuntimeError("the eval stage samples on the run's shared engine; none was lent to it")
    subsets = {name: read_subset(a.path) for name, a in inputs.subsets.items()}
    gen = rt.engine.load(Path(inputs.model_dir.path), inputs.model, inputs.generation, inputs.seed)
    run_eval(inputs.suite, inputs.seed, gen, out_dir, rt.tracker, rt.scoring, prefix=rt.prefix, subsets=subsets)


def eval_summary(inputs: EvalInputs, out_dir: Path, rt: Runtime) -> dict[str, float]:
    """The stage's metrics under the run's prefix for it (on disk they have none: one eval output serves as one
    run's final eval and another's pre-RL eval)."""
    return {f"{rt.prefix}{k}": v for k, v in json.loads((out_dir / METRICS).read_text()).items()}


def _replay(inputs: EvalInputs, out_dir: Path, rt: Runtime) -> None:
    rt.tracker.log(eval_summary(inputs, out_dir, rt))


register(Stage(EvalInputs, eval_stage, output=METRICS, uses_engine=True, summary=eval_summary, replay=_replay))


def run_eval(ev: EvalConfig, seed: int, generator: Generator, out_dir: Path, tracker: Tracker,
             scoring: ScoringConfig, prefix: str = "", step: int | None = None,
             subsets: dict[str, set[str]] | None = None) -> dict[str, float]:
    """Evaluate the suite `ev` with `generator`; returns {"<prefix><variant>/<metric>": value}, with each
    variant's headline metric also as `<variant>/score` and their mean as `avg/score`. Writes generations JSONL
    and the metrics (without the prefix) into `out_dir`."""
    variants = _build_variants(ev, subsets or {})
    conversations = [v.task.messages(it, ev.prompt) for v in variants.values() for it in v.items]
    prompts = render_chat(generator.tokenizer, conversations)
    bf = ev.budget_forcing if ev.budget_forcing.enabled else None
    unforced, sampled = _sample(generator, prompts, variants, seed, greedy=False, bf=bf)
    greedy = _sample(generator, prompts, variants, seed, greedy=True)[0]

    summary: dict[str, float] = {}
    table = []
    with scoring.pool() as pool:
        for i, (name, v) in enumerate(variants.items(), 1):
            k = v.protocol.k
            comps = [sampled[j] for j in v.span]
            flat = pool.score(v.task, [it for it, cs in zip(v.items, comps) for _ in cs],
                              [c.text for cs in comps for c in cs])
            scores = [flat[q * k:(q + 1) * k] for q in range(len(v.items))]
            rows = _rows(name, v.items, comps, scores, v.task, greedy=False)
            greedy_scores = None
            if v.protocol.greedy:
                g = [greedy[j][0] for j in v.span]
                greedy_scores = pool.score(v.task, v.items, [c.text for c in g])
                rows += _rows(name, v.items, [[c] for c in g], [[x] for x in greedy_scores], v.task, greedy=True)
            atomic_write_jsonl(out_dir / "generations" / f"{name}.jsonl", rows)
            metrics = variant_metrics(
                scores, [[len(c.token_ids) for c in cs] for cs in comps],
                [[c.truncated for c in cs] for cs in comps], v.protocol.pass_k, greedy_scores)
            # no answer where the prompt asked for it: a format failure, not a wrong answer
            metrics["no_answer_rate"] = sum(r["extracted"] is None for r in rows if not r["greedy"]) / max(
                1, sum(not r["greedy"] for r in rows))
            if bf:  # the same samples before forcing, for the paper's Std -> BF comparison
                before = pool.score(v.task, [it for it in v.items for _ in range(k)],
                                    [c.text for j in v.span for c in unforced[j]])
                metrics[f"mean@{k}_unforced"] = sum(before) / len(before)
            if ev.skill_use:
                use = SkillUse()
                for item, cs in zip(v.items, comps):
                    for c in cs:
                        use.add(v.task, item, c.text)
                metrics.update(use.metrics())
            metrics["score"] = metrics[v.protocol.metric]
            summary.update({f"{prefix}{name}/{m}": val for m, val in metrics.items()})
            shown = [m for m in (f"mean@{k}", "pass@1", "greedy", "no_answer_rate") if m in metrics]
            log.info("%seval %s (%d/%d variants): %s", prefix, name, i, len(variants),
                     " · ".join(f"{m} {metrics[m]:.3f}" for m in shown))
            table += [[name, r["sample"], r["question"], r["completion"], r["extracted"], r["score"]]
                      for r in rows[: ev.log_samples]]
    summary[f"{prefix}avg/score"] = sum(summary[f"{prefix}{n}/score"] for n in variants) / len(variants)
    ks = {v.protocol.k for v in variants.values()}
    if len(ks) == 1:  # every variant sampled alike: their mean@k averages too
        k_key = f"mean@{ks.pop()}"
        summary[f"{prefix}avg/{k_key}"] = sum(summary[f"{prefix}{n}/{k_key}"] for n in variants) / len(variants)
    tracker.log(summary, step=step)
    tracker.log_table(f"{prefix}eval/samples", ["variant", "sample", "question", "completion", "extracted", "score"],
                      table)
    # unprefixed on disk: the same eval output serves as one run's final eval and another's pre-RL eval
    atomic_write_json(out_dir / METRICS, {k.removeprefix(prefix): v for k, v in summary.items()})
    return summary


def format_table(summary: dict[str, float], prefix: str = "") -> str:
    """A Markdown table, one row per variant, one column per metric."""
    rows: dict[str, dict[str, float]] = {}
    for key, val in summary.items():
        if not key.startswith(prefix):
            continue
        variant, metric = key[len(prefix):].rsplit("/", 1)
        rows.setdefault(variant, {})[metric] = val
    metrics = sorted({m for r in rows.values() for m in r}, key=lambda m: (m != "num_items", m))
    lines = ["| variant | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for variant, r in rows.items():
        cells = ["" if m not in r else f"{r[m]:.0f}" if m == "num_items" else f"{r[m]:.3f}" for m in metrics]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
