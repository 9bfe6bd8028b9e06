"""Reflections: the model judges one of its own attempts and ends with a verdict span (see `traces/format.py`).

The paper's reflection prompt did not survive (App. E.3 is an image in every copy we have), so this one is ours: it
shows the question and the attempt, asks for an independent step-by-step re-check, and requires a Correct or
Incorrect verdict span. The filter is the released code's (`Response.filter_invalid_reflections`): keep a reflection
only when its verdict (`traces.format.parse_verdict`) matches the attempt's true correctness, and (an undocumented
extra) drop any whose lower-cased text contains "idea" or "fast".
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from skillexp.traces.format import (ANSWER_OPEN, VERDICT_OPEN, parse_verdict, tag_verdict,
                                                      verdict_tag)

DROP_SUBSTRINGS = ("idea", "fast")  # released code: `Reflection.is_valid_reflection`

REFLECTION_SYSTEM = (
    "You check solutions carefully. Re-derive the result yourself instead of trusting the solution, then say "
    f"whether its final answer is right. You always end with {verdict_tag(True)} or {verdict_tag(False)}.")


def reflection_messages(question: str, attempt: str) -> list[dict[str, str]]:
    """Chat messages asking the model to verify `attempt` at `question` and end with a verdict tag."""
    user = (f"Here is a question and a proposed solution.\n\n# Question\n{question}\n\n# Proposed solution\n"
            f"{attempt}\n\nLet us verify this answer step by step: recompute every step of the solution, check that "
            f"its final answer (inside {ANSWER_OPEN} tags) satisfies every condition of the question, and then end "
            f"with {verdict_tag(True)} if the final answer is right or {verdict_tag(False)} if it is not.")
    return [{"role": "system", "content": REFLECTION_SYSTEM}, {"role": "user", "content": user}]


@dataclass
class ReflectionFilterStats:
    """Why reflections were dropped, accumulated over calls, so that acceptance rates can be logged."""

    total: int = 0
    kept: int = 0
    no_verdict: int = 0  # missing, malformed or unrecognised verdict
    wrong_verdict: int = 0  # verdict disagrees with the attempt's true correctness
    banned_substring: int = 0  # right verdict, but contains one of the drop substrings
    verdict_tags_added: int = 0  # lenient: an untagged verdict word became a tag

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "kept": self.kept, "no_verdict": self.no_verdict,
                "wrong_verdict": self.wrong_verdict, "banned_substring": self.banned_substring,
                "verdict_tags_added": self.verdict_tags_added}


def valid_reflections(reflections: Iterable[str], attempt_correct: bool,
                      drop_substrings: Sequence[str] = DROP_SUBSTRINGS,
                      stats: ReflectionFilterStats | None = None, lenient: bool = False) -> list[str]:
    """Reflections whose verdict matches `attempt_correct` and whose lower-cased text contains none of
    `drop_substrings` (pass () to switch the released code's "idea"/"fast" filter off). Texts are kept verbatim,
    as the released code inserts them into traces; counts of each drop reason go to `stats`. With `lenient` (a
    lenient task), a reflection without a verdict tag gets one from its closing words (`tag_verdict`, counted)."""
    stats = stats if stats is not None else ReflectionFilterStats()
    banned = [s.lower() for s in drop_substrings]
    kept = []
    for text in reflections:
        stats.total += 1
        verdict = parse_verdict(text)
        if verdict is None and lenient and VERDICT_OPEN not in text and (tagged := tag_verdict(text)):
            text, verdict = tagged, parse_verdict(tagged)
            stats.verdict_tags_added += 1
        if verdict is None:
            stats.no_verdict += 1
        elif verdict != attempt_correct:
            stats.wrong_verdict += 1
        elif any(b in text.lower() for b in banned):
            stats.banned_substring += 1
        else:
            stats.kept += 1
            kept.append(text)
    return kept
