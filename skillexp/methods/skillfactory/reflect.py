"""Reflections: the model judges one of its own attempts and ends with a verdict tag.

The paper's reflection prompt did not survive (App. E.3 is an image in every copy we have), so this one is ours: it
shows the question and the attempt, asks for an independent step-by-step re-check, and requires
`<verdict>Correct</verdict>` or `<verdict>Incorrect</verdict>`. The filter is the released code's
(`Response.filter_invalid_reflections`): keep a reflection only when its verdict matches the attempt's true
correctness, and (an undocumented extra) drop any whose lower-cased text contains "idea" or "fast".
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_REFLECTION_CHARS = 20_000  # far above `reflection_max_tokens`; a longer "reflection" is rejected unread
VERDICT_OPEN, VERDICT_CLOSE = "<verdict>", "</verdict>"
DROP_SUBSTRINGS = ("idea", "fast")  # released code: `Reflection.is_valid_reflection`
LENIENT_TAIL_CHARS = 400  # lenient verdicts are read from the end of a reflection only
_VERDICT_WORD = re.compile(r"\b(incorrect|correct)\b", re.IGNORECASE)

REFLECTION_SYSTEM = (
    "You check solutions carefully. Re-derive the result yourself instead of trusting the solution, then say "
    "whether its final answer is right. You always end with <verdict>Correct</verdict> or "
    "<verdict>Incorrect</verdict>.")


def reflection_messages(question: str, attempt: str) -> list[dict[str, str]]:
    """Chat messages asking the model to verify `attempt` at `question` and end with a verdict tag."""
    user = (f"Here is a question and a proposed solution.\n\n# Question\n{question}\n\n# Proposed solution\n"
            f"{attempt}\n\nLet us verify this answer step by step: recompute every step of the solution, check that "
            "its final answer (inside <answer> tags) satisfies every condition of the question, and then end with "
            "<verdict>Correct</verdict> if the final answer is right or <verdict>Incorrect</verdict> if it is not.")
    return [{"role": "system", "content": REFLECTION_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str | None) -> bool | None:
    """True/False when the text between the first `<verdict>` and the next `</verdict>` is exactly "correct" or
    "incorrect" after lower() and strip() (as the released code reads it); None for anything else: no tag, an
    unclosed tag, a nested or empty span, "correctly", a non-string, or a text over MAX_REFLECTION_CHARS.
    Linear time; never raises."""
    if not isinstance(text, str) or len(text) > MAX_REFLECTION_CHARS:
        return None
    start = text.find(VERDICT_OPEN)
    if start < 0:
        return None
    start += len(VERDICT_OPEN)
    end = text.find(VERDICT_CLOSE, start)
    if end < 0:
        return None
    return {"correct": True, "incorrect": False}.get(text[start:end].lower().strip())


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


def tag_verdict(text: str) -> str | None:
    """For weak models that judge in words but never write the tag (SmolLM2): the last standalone "correct" or
    "incorrect" near the end becomes `<verdict>…</verdict>` appended to the text; None when there is none."""
    if not isinstance(text, str) or len(text) > MAX_REFLECTION_CHARS:
        return None
    words = _VERDICT_WORD.findall(text[-LENIENT_TAIL_CHARS:])
    if not words:
        return None
    return f"{text.rstrip()}\n<verdict>{words[-1].capitalize()}</verdict>"


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
