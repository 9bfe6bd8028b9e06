"""SkillFactory's trace format in one place: the tags, how a trace is written with them, and how model output in
that format is read back (attempt and reflection blocks, verdicts), plus the budget-forcing trigger.

A trace (paper §3; the released `generate_dynamic_prompt_template`) is one assistant turn, lines joined by "\\n":

    <think>
    <sample>
    an attempt, ending in <answer>…</answer>
    </sample>
    <reflect>
    a reflection on it, ending in <verdict>Correct</verdict> or <verdict>Incorrect</verdict>
    </reflect>
    a glue phrase (between attempts only)
    <sample>
    …
    </think>


    an ending phrase

    <answer>
    the last attempt's answer
    </answer>

Model output is untrusted input, so every reader here is bounded: a text is capped (or refused) by length before
it is read, scans are linear (`str.find` from a moving position; the one regex is an alternation of literals)
and stop after a fixed number of blocks; no reader raises. Only the standard library is imported, so that
`skillexp.eval` and `skillexp.config` can import this module without loading the SkillFactory method.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"  # the reasoning part of a trace
SAMPLE_OPEN, SAMPLE_CLOSE = "<sample>", "</sample>"  # one attempt
REFLECT_OPEN, REFLECT_CLOSE = "<reflect>", "</reflect>"  # the model's check of the attempt before it
VERDICT_OPEN, VERDICT_CLOSE = "<verdict>", "</verdict>"  # a reflection's judgement: Correct or Incorrect
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"  # an attempt's answer, and the trace's final one
SAMPLE, REFLECT = "sample", "reflect"  # the kinds of block `blocks` returns
_BLOCK_TAGS = {SAMPLE: (SAMPLE_OPEN, SAMPLE_CLOSE), REFLECT: (REFLECT_OPEN, REFLECT_CLOSE)}

# Tags an attempt must not contain: stitched in verbatim, it would break the structure of the trace around it.
TRACE_TAGS = (THINK_OPEN, THINK_CLOSE, SAMPLE_OPEN, SAMPLE_CLOSE, REFLECT_OPEN, REFLECT_CLOSE, VERDICT_OPEN)
# Budget forcing (paper §6) re-opens a finished reasoning with this: the model is asked for one more attempt.
BUDGET_TRIGGER = SAMPLE_OPEN

MAX_REFLECTION_CHARS = 20_000  # far above `reflection_max_tokens`; a longer "reflection" is rejected unread
LENIENT_TAIL_CHARS = 400  # lenient verdicts are read from the end of a reflection only
MAX_SCAN_CHARS = 50_000  # `blocks` reads only the last this many characters of a completion
MAX_BLOCKS = 64  # ... and returns at most this many blocks
_VERDICT_WORD = re.compile(r"\b(incorrect|correct)\b", re.IGNORECASE)


class TraceStep(NamedTuple):
    """One attempt of a trace as written: its text, the reflection after it (None: reflections are ablated, and
    an empty line stands where the block would be) and the glue line after that (None: no glue, the last step)."""

    attempt: str
    reflection: str | None
    glue: str | None


def verdict_tag(correct: bool) -> str:
    """The verdict span a reflection ends with: `Correct` for True, `Incorrect` for False."""
    return f"{VERDICT_OPEN}{'Correct' if correct else 'Incorrect'}{VERDICT_CLOSE}"


def stitch_trace(steps: Sequence[TraceStep], ending: str, answer: str | None) -> str:
    """The trace text (the released template): a think block holding each step's sample block, its reflect block
    (or an empty line, what the released `.replace("<reflect>\\n\\n</reflect>", "")` leaves) and its glue line,
    then two blank lines, `ending` and `answer` in answer tags (None is written as "None", as released)."""
    if not steps:
        raise ValueError("a trace needs at least one attempt")
    lines = [THINK_OPEN]
    for step in steps:
        lines.append(f"{SAMPLE_OPEN}\n{step.attempt}\n{SAMPLE_CLOSE}")
        lines.append("" if step.reflection is None else f"{REFLECT_OPEN}\n{step.reflection}\n{REFLECT_CLOSE}")
        if step.glue is not None:
            lines.append(step.glue)
    lines.append(THINK_CLOSE)
    lines.append(f"\n\n{ending}\n\n{ANSWER_OPEN}\n{answer}\n{ANSWER_CLOSE}")
    return "\n".join(lines)


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


def tag_verdict(text: str) -> str | None:
    """For weak models that judge in words but never write the tag (SmolLM2): the last standalone "correct" or
    "incorrect" in the last LENIENT_TAIL_CHARS becomes a verdict span appended to the right-stripped text; None
    when there is none, for a non-string, or for a text over MAX_REFLECTION_CHARS."""
    if not isinstance(text, str) or len(text) > MAX_REFLECTION_CHARS:
        return None
    words = _VERDICT_WORD.findall(text[-LENIENT_TAIL_CHARS:])
    if not words:
        return None
    return f"{text.rstrip()}\n{verdict_tag(words[-1].lower() == 'correct')}"


def blocks(text: str) -> list[tuple[str, str]]:
    """(kind, body) of the sample and reflect blocks in the last MAX_SCAN_CHARS of `text`, in order, at most
    MAX_BLOCKS; the scan stops at the first block left unclosed. Bodies are verbatim (newlines kept). One linear
    scan: a lazy regex would be quadratic on thousands of unclosed tags."""
    text = text[-MAX_SCAN_CHARS:]
    out: list[tuple[str, str]] = []
    pos = 0
    while len(out) < MAX_BLOCKS:
        starts = [(i, kind) for kind, (open_tag, _) in _BLOCK_TAGS.items() if (i := text.find(open_tag, pos)) >= 0]
        if not starts:
            break
        start, kind = min(starts)
        open_tag, close_tag = _BLOCK_TAGS[kind]
        body_start = start + len(open_tag)
        end = text.find(close_tag, body_start)
        if end < 0:
            break
        out.append((kind, text[body_start:end]))
        pos = end + len(close_tag)
    return out
