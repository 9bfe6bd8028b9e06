"""`method=skillfactory`: sample attempts under four prompt variants, reflect on each, keep the reflections whose
verdict is right, and stitch traces that retry until a correct attempt (paper §3).

Model output is untrusted: attempts that already contain trace tags, or no or several answers, would corrupt a
trace's structure; they are skipped and counted.

Rationalization (`<variant>_hint`, OpenThoughts, App. E.5): those prompts show the gold answer as a hint; a response
to one that says "hint" (any case) is dropped before grading (counted as `attempts_skipped/mentions_hint`), and the
rest enter traces like any attempt. Reflections are asked without the hint, and every SFT row is posed with the
un-hinted `original` prompt, so the student never sees the gold answer. Responses to un-hinted prompts are not
filtered: they cannot leak a hint they never saw.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from statistics import fmean

from skillexp.generation.base import Generator
from skillexp.methods.config import SFTDataInputs
from skillexp.generation.sampling import sample
from skillexp.methods.skillfactory.reflect import ReflectionFilterStats, reflection_messages, valid_reflections
from skillexp.traces.format import ANSWER_CLOSE, ANSWER_OPEN, TRACE_TAGS
from skillexp.methods.skillfactory.traces import Attempt, keep_question, sample_alg1, sample_cfull
from skillexp.tasks.base import Item, Task
from skillexp.tasks.prompts import is_hint
from skillexp.tasks.scoring import ScorePool


HINT_WORD = "hint"  # a response to a hint prompt that contains it (lower-cased) is dropped (paper App. E.5)


def _malformed(text: str) -> str | None:
    """Why an attempt cannot be stitched, or None."""
    if any(t in text for t in TRACE_TAGS):
        return "trace_tags"
    n = text.count(ANSWER_OPEN)
    if n == 0 or text.count(ANSWER_CLOSE) == 0:
        return "no_answer"
    if n > 1:
        return "several_answers"
    return None


def build_skillfactory(task: Task, items: list[Item], gen: Generator, pool: ScorePool, cfg: SFTDataInputs,
                       seed: int) -> tuple[list[dict], dict[str, float]]:
    sf = cfg.skillfactory
    assert sf is not None  # set for method=skillfactory
    variants = ["original"] if sf.ablation == "no_prompt_diversity" else list(sf.prompt_variants)
    pairs = [(item, v) for item in items for v in variants]
    t0 = time.perf_counter()
    comps = sample(gen, [task.messages(item, v) for item, v in pairs], cfg.samples_per_question, cfg.sampling, seed)
    t1 = time.perf_counter()
    flat, mentions_hint = [], 0
    for (item, v), cs in zip(pairs, comps):
        for c in cs:
            if c.truncated:
                continue
            if is_hint(v) and HINT_WORD in c.text.lower():  # it gives its hint away: dropped
                mentions_hint += 1
            else:
                flat.append((item, v, c.text))
    truncated = sum(c.truncated for cs in comps for c in cs)
    scores = pool.score(task, [f[0] for f in flat], [f[2] for f in flat])
    t2 = time.perf_counter()
    accuracy = {v: fmean([s for (_, fv, _), s in zip(flat, scores) if fv == v] or [0.0]) for v in variants}

    skipped: Counter[str] = Counter()
    candidates, tagged = [], 0
    for (item, v, raw), score in zip(flat, scores):
        text = task.tag_answer(raw) or raw  # lenient tasks: an untagged answer gets its tags (counted)
        tagged += text != raw
        why = _malformed(text)
        if why:
            skipped[why] += 1
        else:
            candidates.append((item, v, text, score >= 1))
    reflections: list[list[str]] = [[] for _ in candidates]
    rstats, reflected_tokens = ReflectionFilterStats(), 0
    if sf.ablation != "no_reflections" and candidates:
        refl = sample(gen, [reflection_messages(item.question, text) for item, _, text, _ in candidates],
                      sf.reflections_per_attempt, cfg.sampling, seed + 1, max_tokens=sf.reflection_max_tokens)
        reflections = [valid_reflections([c.text for c in cs], ok, list(sf.drop_reflection_substrings), rstats,
                                         lenient=task.lenient) for cs, (_, _, _, ok) in zip(refl, candidates)]
        reflected_tokens = sum(len(c.token_ids) for cs in refl for c in cs)
    t3 = time.perf_counter()

    by_item: dict[str, list[Attempt]] = {}
    for (item, v, text, ok), refls in zip(candidates, reflections):
        group = by_item.setdefault(item.id, [])
        group.append(Attempt(len(group), text, task.extract(text), ok, v, tuple(refls)))
    rng = random.Random(f"skillfactory-{seed}")
    rows, kept_questions = [], 0
    for item in items:
        attempts = by_item.get(item.id, [])
        if not keep_question(attempts, sf.min_attempts, sf.ablation):
            continue
        kept_questions += 1
        sampler = sample_cfull if sf.sampler == "cfull" else sample_alg1
        for trace in sampler(attempts, rng, sf.max_attempts, sf.ablation):
            # posed as the student is asked: the un-hinted `original` prompt, whatever the attempts were sampled under
            rows.append({"messages": task.messages(item) + [{"role": "assistant", "content": trace.text}],
                         "question_id": item.id, "attempts": trace.attempts, "correctness": trace.correctness,
                         "variants": trace.variants, "num_attempts": trace.num_attempts, "sampler": trace.sampler,
                         "source": "skillfactory"})

    verdicts = rstats.total - rstats.no_verdict
    stats = {f"skillfactory/base_accuracy/{v}": a for v, a in accuracy.items()}
    stats.update({
        "skillfactory/attempts": len(flat) + truncated + mentions_hint, "skillfactory/attempts_truncated": truncated,
        "skillfactory/attempts_answer_tags_added": tagged,
        "skillfactory/seconds_sampling": t1 - t0, "skillfactory/seconds_scoring": t2 - t1,
        "skillfactory/seconds_reflecting": t3 - t2,
        "skillfactory/tokens_sampled": sum(len(c.token_ids) for cs in comps for c in cs),
        "skillfactory/tokens_reflected": reflected_tokens,
        **{f"skillfactory/attempts_skipped/{k}": float(n) for k, n in skipped.items()},
        **({"skillfactory/attempts_skipped/mentions_hint": float(mentions_hint)}
           if any(map(is_hint, variants)) else {}),
        "skillfactory/reflections": rstats.total, "skillfactory/reflections_kept": rstats.kept,
        "skillfactory/reflection_acceptance": rstats.kept / max(rstats.total, 1),
        "skillfactory/reflection_no_verdict": rstats.no_verdict / max(rstats.total, 1),
        "skillfactory/reflection_verdict_tags_added": rstats.verdict_tags_added,
        "skillfactory/verdict_accuracy": (verdicts - rstats.wrong_verdict) / max(verdicts, 1),
        "skillfactory/attempts_with_valid_reflection": sum(bool(r) for r in reflections) / max(len(candidates), 1),
        "skillfactory/question_acceptance": kept_questions / max(len(items), 1),
        "skillfactory/traces": len(rows),
        "skillfactory/trace_chars_mean": fmean([len(r["messages"][-1]["content"]) for r in rows] or [0.0]),
    })
    for n, count in sorted(Counter(r["num_attempts"] for r in rows).items()):
        stats[f"skillfactory/traces_with_{n}_attempts"] = float(count)
    return rows, stats
