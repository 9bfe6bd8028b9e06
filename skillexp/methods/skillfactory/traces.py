"""Choose which of a question's attempts, reflections and glue phrases make up each SkillFactory trace: attempt,
reflection with its verdict, glue, retry (the text itself is written by `traces.format.stitch_trace`).

Two samplers (spec §9.2): the released code's `*C_full` (the default: it produced the released SFT data) and the
paper's Algorithm 1. `sample_cfull` and `render_trace` draw from the rng in the released script's order
(`QA_Tuple.sample_responses`, then ending phrase, then per attempt reflection and glue), so with the same attempt
list and seed they make the same choices as `sft_data_creation.py --formats '*C_full'`.

Ablations (paper App. C; the App. C text is not in our copy, so these are our readings):
- `no_reflections`: the released `no_reflection` format: reflect blocks removed (leaving the blank line the
  released `.replace` leaves), generic glue only. Attempts need no reflection to be usable (none are generated).
- `no_prompt_diversity`: only attempts sampled with the `original` prompt ("Let's think step by step") are used.
- `no_sample_order`: the released `random` format ("correctness is ignored"): the last attempt is drawn from all
  usable attempts, so a trace may end on an incorrect attempt, and its final answer is that attempt's answer. It is
  the only released format that drops the "retry until right, then stop" order, and it fits the paper's skill-use
  table (the No-Sample-Order model gives many more answers per response: it never learned to stop when right).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from skillexp.methods.skillfactory import phrases
from skillexp.traces.format import TraceStep, stitch_trace

ABLATIONS = ("none", "no_reflections", "no_prompt_diversity", "no_sample_order")


@dataclass(frozen=True)
class Attempt:
    """One sampled response to a question, graded, with its valid reflections (see `reflect.valid_reflections`)."""

    index: int  # position among the question's attempts (provenance)
    text: str  # raw model output, inserted verbatim
    answer: str | None  # extracted answer; the trace's final answer when this attempt comes last
    correct: bool
    variant: str  # prompt variant it was sampled under
    reflections: tuple[str, ...] = ()


@dataclass
class Trace:
    """One stitched assistant turn and where its parts came from."""

    text: str
    attempts: list[int]  # Attempt.index of each part, in trace order
    correctness: list[bool]
    variants: list[str]
    num_attempts: int
    sampler: str  # "cfull" or "alg1"


def _check_ablation(ablation: str) -> None:
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose one of {list(ABLATIONS)}")


def original_prompt_only(attempts: Sequence[Attempt]) -> list[Attempt]:
    """The No-Prompt-Diversity filter: attempts sampled under the plain `original` prompt."""
    return [a for a in attempts if a.variant == "original"]


def usable(attempts: Sequence[Attempt], ablation: str = "none") -> list[Attempt]:
    """Attempts that may enter a trace: those with >= 1 valid reflection (any, when reflections are ablated),
    restricted to the `original` prompt under `no_prompt_diversity`."""
    _check_ablation(ablation)
    pool = original_prompt_only(attempts) if ablation == "no_prompt_diversity" else list(attempts)
    return [a for a in pool if a.reflections or ablation == "no_reflections"]


def keep_question(attempts: Sequence[Attempt], min_attempts: int = 5, ablation: str = "none") -> bool:
    """The released per-question filter: >= `min_attempts` usable attempts, at least one of them correct (the
    released `random` format, our `no_sample_order`, is gated on a correct attempt too)."""
    pool = usable(attempts, ablation)
    return len(pool) >= min_attempts and any(a.correct for a in pool)


def render_trace(parts: Sequence[Attempt], rng: random.Random, with_reflections: bool = True,
                 fix_phrase_concatenation: bool = False) -> str:
    """The released template (`traces.format.stitch_trace`) filled in the released draw order: the ending phrase,
    then per part a reflection and, after every part but the last, a glue line.

    Glue after part i comes from correct_glue + generic_glue when part i was correct, else incorrect_glue +
    generic_glue; without reflections the reflect block becomes an empty line and the glue is generic only.
    """
    if not parts:
        raise ValueError("a trace needs at least one attempt")
    ending = rng.choice(phrases.ENDING)
    steps = []
    for i, part in enumerate(parts):
        reflection = glue = None
        if with_reflections:
            if not part.reflections:
                raise ValueError(f"attempt {part.index} has no valid reflection")
            reflection = rng.choice(part.reflections)
        if i < len(parts) - 1:
            if not with_reflections:
                pool = list(phrases.GENERIC_GLUE)
            elif part.correct:
                pool = phrases.correct_glue(fix_phrase_concatenation) + list(phrases.GENERIC_GLUE)
            else:
                pool = phrases.incorrect_glue(fix_phrase_concatenation) + list(phrases.GENERIC_GLUE)
            glue = rng.choice(pool)
        steps.append(TraceStep(part.text, reflection, glue))
    return stitch_trace(steps, ending, parts[-1].answer)


def _trace(parts: list[Attempt], rng: random.Random, sampler: str, ablation: str,
           fix_phrase_concatenation: bool) -> Trace:
    text = render_trace(parts, rng, ablation != "no_reflections", fix_phrase_concatenation)
    return Trace(text=text, attempts=[a.index for a in parts], correctness=[a.correct for a in parts],
                 variants=[a.variant for a in parts], num_attempts=len(parts), sampler=sampler)


def sample_cfull(attempts: Sequence[Attempt], rng: random.Random, max_attempts: int = 5, ablation: str = "none",
                 fix_phrase_concatenation: bool = False) -> list[Trace]:
    """The released `*C_full` format: for N = 1..max_attempts one trace whose last attempt is a random correct one
    and whose first N-1 are drawn uniformly without replacement from all OTHER usable attempts, whatever their
    correctness (so the correct:incorrect mix follows the base model's accuracy). N is skipped when there are
    fewer than N usable attempts (the released code requires min_attempts >= max_attempts instead)."""
    pool = usable(attempts, ablation)
    last_pool = pool if ablation == "no_sample_order" else [a for a in pool if a.correct]
    if not last_pool:
        return []
    traces = []
    for n in range(1, min(max_attempts, len(pool)) + 1):
        last = rng.choice(last_pool)
        prefix = rng.sample([a for a in pool if a.index != last.index], n - 1)
        traces.append(_trace(prefix + [last], rng, "cfull", ablation, fix_phrase_concatenation))
    return traces


def sample_alg1(attempts: Sequence[Attempt], rng: random.Random, l_max: int = 5, ablation: str = "none",
                fix_phrase_concatenation: bool = False) -> list[Trace]:
    """Paper Algorithm 1, one trace per call: n+ = min(U[1, L_max], |Y+|) correct and n- = min(U[0, n+ - 1], |Y-|)
    incorrect attempts, sampled without replacement; trace = shuffle(T- + T+[:-1]) + [T+[-1]], so it ends on a
    correct attempt and n- < n+.

    The extracted Algorithm 1 wraps this in `while |Y+| > 0` without saying what is removed from Y+ per iteration.
    We read it as "one trace per question per repeat" (the loop runs over the repeats, nothing is consumed), which
    matches the released `--num_repeats_per_question`; call this once per question per repeat. Under
    `no_sample_order` all n- + n+ attempts are shuffled and the last one's answer is the final answer.
    """
    pool = usable(attempts, ablation)
    pos, neg = [a for a in pool if a.correct], [a for a in pool if not a.correct]
    if not pos:
        return []
    n_pos = min(rng.randint(1, l_max), len(pos))
    n_neg = min(rng.randint(0, n_pos - 1), len(neg))
    t_pos, t_neg = rng.sample(pos, n_pos), rng.sample(neg, n_neg)
    if ablation == "no_sample_order":
        parts = t_neg + t_pos
        rng.shuffle(parts)
    else:
        head = t_neg + t_pos[:-1]
        rng.shuffle(head)
        parts = head + [t_pos[-1]]
    return [_trace(parts, rng, "alg1", ablation, fix_phrase_concatenation)]


def sft_row(question_messages: Sequence[dict[str, str]], trace: Trace, **provenance: Any) -> dict[str, Any]:
    """One SFT conversation: the question's user (and system) turns, then the trace as the assistant turn, plus
    provenance columns (`provenance` adds e.g. question_id, source)."""
    return {"messages": [*question_messages, {"role": "assistant", "content": trace.text}],
            "attempts": trace.attempts, "correctness": trace.correctness, "variants": trace.variants,
            "num_attempts": trace.num_attempts, "sampler": trace.sampler, **provenance}
