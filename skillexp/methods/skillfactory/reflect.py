"""Reflections: the model judges one of its own attempts and ends with a verdict tag.

The paper's reflection prompt did not survive (App. E.3 is an image), so this one is ours: it shows the question
and the attempt, asks for an independent re-check, and requires `<verdict>Correct</verdict>` or
`<verdict>Incorrect</verdict>`. Only reflections whose verdict matches the truth are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_REFLECTION_CHARS = 20_000

REFLECTION_SYSTEM = (
    "You check solutions carefully. Re-derive the result yourself instead of trusting the solution, then say "
    "whether its final answer is right. You always end with <verdict>Correct</verdict> or "
    "<verdict>Incorrect</verdict>.")


def reflection_messages(question: str, attempt: str) -> list[dict[str, str]]:
    user = (f"Here is a question and a proposed solution.\n\n# Question\n{question}\n\n# Proposed solution\n"
            f"{attempt}\n\nLet us verify this answer step by step: recompute every step of the solution, check that "
            "its final answer (inside <answer> tags) satisfies every condition of the question, and then end with "
            "<verdict>Correct</verdict> if the final answer is right or <verdict>Incorrect</verdict> if it is not.")
    return [{"role": "system", "content": REFLECTION_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str | None) -> bool | None:
    """True/False for a verdict of exactly "correct"/"incorrect" (case and spaces aside) in the first
    `<verdict>` span; None when the tag is missing, unclosed, or says anything else."""
    if not text or len(text) > MAX_REFLECTION_CHARS:
        return None
    start = text.find("<verdict>")
    end = text.find("</verdict>", start + 1)
    if start < 0 or end < 0:
        return None
    verdict = text[start + len("<verdict>"): end].strip().lower()
    return {"correct": True, "incorrect": False}.get(verdict)


@dataclass
class ReflectionFilterStats:
    total: int = 0
    kept: int = 0
    no_verdict: int = 0
    wrong_verdict: int = 0
    banned_substring: int = 0
    by_truth: dict[str, int] = field(default_factory=lambda: {"correct_right": 0, "incorrect_right": 0,
                                                              "correct_total": 0, "incorrect_total": 0})


def valid_reflections(reflections: list[str], attempt_correct: bool, banned: list[str],
                      stats: ReflectionFilterStats) -> list[str]:
    """Reflections whose verdict matches the attempt's true correctness and that contain no banned substring
    (the released code drops reflections mentioning "idea" or "fast")."""
    kept = []
    key = "correct" if attempt_correct else "incorrect"
    for r in reflections:
        stats.total += 1
        stats.by_truth[f"{key}_total"] += 1
        verdict = parse_verdict(r)
        if verdict is None:
            stats.no_verdict += 1
        elif verdict != attempt_correct:
            stats.wrong_verdict += 1
        elif any(b in r.lower() for b in banned):
            stats.by_truth[f"{key}_right"] += 1
            stats.banned_substring += 1
        else:
            stats.by_truth[f"{key}_right"] += 1
            stats.kept += 1
            kept.append(r.strip())
    return kept
