"""Answer extraction from untrusted model text: bounded in size, linear-time patterns only.

Final answers sit at the end of a completion, so only its last `MAX_SCAN_CHARS` are scanned: a 10 MB completion
costs the same as a 20 kB one. Every pattern is a bounded literal match (no nested quantifiers), so no input can
make the regex engine backtrack catastrophically.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

MAX_SCAN_CHARS = 20_000
MAX_ANSWER_CHARS = 1_000  # a longer "answer" is not an answer to any of our tasks; refusing it bounds the checkers
_TAGS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {}
BOXED_OPEN = re.compile(r"\\boxed\s{0,4}\{")  # bounded: a literal, at most four spaces, a brace
_BRACE = re.compile(r"[{}]")
_INT = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|-?[0-9]+")


def _tag_patterns(tag: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    if tag not in _TAGS:  # `<answer>`, `< Answer >`, `</ answer>`: case and a little whitespace are forgiven
        name = re.escape(tag)
        _TAGS[tag] = (re.compile(rf"<\s{{0,8}}{name}\s{{0,8}}>", re.IGNORECASE),
                      re.compile(rf"<\s{{0,8}}/\s{{0,8}}{name}\s{{0,8}}>", re.IGNORECASE))
    return _TAGS[tag]


def last_tag(text: str | None, tag: str = "answer", max_chars: int = MAX_ANSWER_CHARS) -> str | None:
    """Stripped content of the last complete `<tag>…</tag>` span, or None (no span, no closing tag, or longer
    than `max_chars`).

    "Last complete" means the last closing tag and the opening tag nearest before it, so an attempt that opened
    a tag and was cut off before closing it leaves the previous complete answer in force.
    """
    if not isinstance(text, str) or not text:
        return None
    tail = text[-MAX_SCAN_CHARS:]
    open_re, close_re = _tag_patterns(tag)
    close = None
    for close in close_re.finditer(tail):
        pass
    if close is None:
        return None
    opened = None
    for opened in open_re.finditer(tail, 0, close.start()):
        pass
    if opened is None:
        return None
    inner = tail[opened.end(): close.start()].strip()
    return inner if len(inner) <= max_chars else None


def last_boxed(text: str | None) -> str | None:
    r"""Content of the last `\boxed{…}` (braces balanced within MAX_ANSWER_CHARS), or None."""
    if not isinstance(text, str) or not text:
        return None
    tail = text[-MAX_SCAN_CHARS:]
    start = None
    for start in BOXED_OPEN.finditer(tail):
        pass
    if start is None:
        return None
    end = closing_brace(tail, start.end())
    return None if end is None else tail[start.end():end].strip()


def closing_brace(text: str, begin: int, max_chars: int = MAX_ANSWER_CHARS) -> int | None:
    """The index of the `}` that closes a `{` opened just before `begin`, or None when it is not closed within
    `max_chars` characters (each one looked at once)."""
    depth = 1
    for brace in _BRACE.finditer(text, begin, min(len(text), begin + max_chars + 1)):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return brace.start()
    return None


def last_integer(text: str | None) -> str | None:
    """The last ASCII integer in the last 2,000 chars (`1,234` counts as 1234), for lenient extraction."""
    if not isinstance(text, str) or not text:
        return None
    found = _INT.findall(text[-2_000:])
    return found[-1].replace(",", "") if found else None


@dataclass(frozen=True)
class AnswerFormat:
    """Where a final answer goes: what the prompts ask for and what the grader reads, in one place, so that the
    two cannot disagree (tests/tasks/test_answer_format.py poses every task in every format and grades an answer
    written as the prompt asks, and one written the other way)."""

    name: str
    slot: str  # how the prompts' sentences end: "give your resulting {answer_type} <slot>."
    slot_one: str  # the same where the paper's prompt says "tag" (plan_and_execute)
    system: str  # the same, in the variants' system prompts: "... then you give your final answer <system>."
    system_bare: str  # the same where the paper's system prompt leaves the quotes out (plan_and_execute)
    always_end: str  # the variants' closing rule
    place: str  # the same after "as the final answer" (the instruction prompt)
    original: str  # the `original` variant's whole instruction after the question (a format string: {answer_type})
    read: Callable[[str | None], str | None]  # the grader's reading: the answer, or None (no answer found)
    write: Callable[[str], str]  # an answer as the prompt asks for it (reference solutions, tests)


def _tagged(answer: str) -> str:
    return f"<answer>{answer}</answer>"


def _boxed(answer: str) -> str:
    return f"\\boxed{{{answer}}}"


ANSWER_FORMATS = {
    # SkillFactory's prompts (App. E.2) and traces: the answer between <answer> tags
    "tag": AnswerFormat(
        "tag", slot='as the answer in the "<answer>(your answer)</answer>" tags',
        slot_one='as the answer in the "<answer>(your answer)</answer>" tag',
        system='in "<answer>(your answer)</answer>"', system_bare="in <answer>(your answer)</answer>",
        place='in the "<answer>(your answer)</answer>" tags',
        always_end="You always end with </answer>, you never ever end without giving an answer.",
        original=("Let's think step by step, then give your resulting {answer_type} as the answer in the "
                  '"<answer>(your answer)</answer>" tags.'),
        read=last_tag, write=_tagged),
    # STAT's harness (Qwen2.5-Math's chain-of-thought prompt): the answer in \boxed{}
    "boxed": AnswerFormat(
        "boxed", slot="within \\boxed{}", slot_one="within \\boxed{}", system="within \\boxed{}",
        system_bare="within \\boxed{}", place="within \\boxed{}",
        always_end="You always end with your final answer within \\boxed{}, you never ever end without one.",
        original="Please reason step by step, and put your final answer within \\boxed{{}}.",
        read=last_boxed, write=_boxed),
}
