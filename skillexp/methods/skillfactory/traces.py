"""Stitch attempts and reflections into SkillFactory traces: attempt → <reflect> verdict → glue → retry.

Two samplers: the released code's `*C_full` (the default: it produced the paper's data) and the paper's
Algorithm 1. Both end on a correct attempt whose answer becomes the trace's final answer. Ablations (paper App. C):
`no_reflections` drops the <reflect> blocks (generic glue only); `no_sample_order` puts the correct attempt at a
random position instead of last (our reading of "no sample order": the trace no longer teaches "retry until
right"); `no_prompt_diversity` is applied upstream (only the `original` prompt is sampled).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from skillexp.methods.skillfactory import phrases


@dataclass(frozen=True)
class Attempt:
    index: int  # position among the question's attempts (provenance)
    text: str
    answer: str | None
    correct: bool
    variant: str
    reflections: tuple[str, ...] = ()  # valid reflections only


@dataclass
class Trace:
    text: str
    attempts: list[int] = field(default_factory=list)
    correctness: list[bool] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    sampler: str = "cfull"

    @property
    def num_attempts(self) -> int:
        return len(self.attempts)


def usable(attempts: list[Attempt], ablation: str = "none") -> list[Attempt]:
    """Attempts that can enter a trace: those with a valid reflection (any attempt when reflections are ablated)."""
    return [a for a in attempts if a.reflections or ablation == "no_reflections"]


def keep_question(attempts: list[Attempt], min_attempts: int, ablation: str = "none") -> bool:
    """The released code's per-question filter: enough usable attempts, and at least one correct."""
    ok = usable(attempts, ablation)
    return len(ok) >= min_attempts and any(a.correct for a in ok)


def render(parts: list[Attempt], final: Attempt, rng: random.Random, with_reflections: bool = True,
           split_fused: bool = False) -> str:
    """The released template: blocks joined by newlines, a glue phrase after every block but the last."""
    lines = ["<think>"]
    for i, a in enumerate(parts):
        lines.append(f"<sample>\n{a.text.strip()}\n</sample>")
        if with_reflections:
            lines.append(f"<reflect>\n{rng.choice(a.reflections).strip()}\n</reflect>")
        if i < len(parts) - 1:
            if not with_reflections:
                pool = phrases.GENERIC_GLUE
            elif a.correct:
                pool = phrases.correct_glue(split_fused) + phrases.GENERIC_GLUE
            else:
                pool = phrases.incorrect_glue(split_fused) + phrases.GENERIC_GLUE
            lines.append(rng.choice(pool))
    lines.append("</think>")
    lines.append(f"\n\n{rng.choice(phrases.ENDING)}\n\n<answer>\n{final.answer}\n</answer>")
    return "\n".join(lines)


def _trace(parts: list[Attempt], final: Attempt, rng: random.Random, sampler: str, with_reflections: bool,
           split_fused: bool) -> Trace:
    return Trace(text=render(parts, final, rng, with_reflections, split_fused), attempts=[a.index for a in parts],
                 correctness=[a.correct for a in parts], variants=[a.variant for a in parts], sampler=sampler)


def sample_cfull(attempts: list[Attempt], rng: random.Random, max_attempts: int = 5, ablation: str = "none",
                 split_fused: bool = False) -> list[Trace]:
    """`*C_full`: for N = 1..max_attempts one trace whose last attempt is a random correct one and whose first
    N-1 are drawn without replacement from all other attempts, whatever their correctness."""
    pool = usable(attempts, ablation)
    correct = [a for a in pool if a.correct]
    traces = []
    for n in range(1, max_attempts + 1):
        if not correct or len(pool) < n:
            break
        last = rng.choice(correct)
        prefix = rng.sample([a for a in pool if a is not last], n - 1)
        parts = _order(prefix, last, rng, ablation)
        traces.append(_trace(parts, last, rng, "cfull", ablation != "no_reflections", split_fused))
    return traces


def sample_alg1(attempts: list[Attempt], rng: random.Random, l_max: int = 5, ablation: str = "none",
                split_fused: bool = False) -> list[Trace]:
    """Paper Algorithm 1, one trace per call: n+ ~ U[1, L_max] correct and n- ~ U[0, n+ - 1] incorrect attempts
    (capped by what exists), shuffled, ending on a correct one. We read its `while |Y+| > 0` header as "one trace
    per question per repeat" (its consumption semantics are not recoverable)."""
    pool = usable(attempts, ablation)
    pos, neg = [a for a in pool if a.correct], [a for a in pool if not a.correct]
    if not pos:
        return []
    n_pos = min(rng.randint(1, l_max), len(pos))
    n_neg = min(rng.randint(0, n_pos - 1), len(neg))
    chosen_pos, chosen_neg = rng.sample(pos, n_pos), rng.sample(neg, n_neg)
    last = chosen_pos[-1]
    parts = _order(chosen_neg + chosen_pos[:-1], last, rng, ablation)
    return [_trace(parts, last, rng, "alg1", ablation != "no_reflections", split_fused)]


def _order(prefix: list[Attempt], last: Attempt, rng: random.Random, ablation: str) -> list[Attempt]:
    prefix = list(prefix)
    rng.shuffle(prefix)
    if ablation == "no_sample_order":
        prefix.insert(rng.randint(0, len(prefix)), last)
        return prefix
    return prefix + [last]
