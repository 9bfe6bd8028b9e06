"""Answer extraction from untrusted model text: bounded in size, linear-time patterns only.

Final answers sit at the end of a completion, so only its last `MAX_SCAN_CHARS` are scanned: a 10 MB completion
costs the same as a 20 kB one. Every pattern is a bounded literal match (no nested quantifiers), so no input can
make the regex engine backtrack catastrophically.
"""
from __future__ import annotations

import re

MAX_SCAN_CHARS = 20_000
MAX_ANSWER_CHARS = 1_000  # a longer "answer" is not an answer to any of our tasks; refusing it bounds the checkers
_TAGS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {}
_BOXED = re.compile(r"\\boxed\s{0,4}\{")
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
    for start in _BOXED.finditer(tail):
        pass
    if start is None:
        return None
    depth, begin = 1, start.end()
    for j in range(begin, min(len(tail), begin + MAX_ANSWER_CHARS + 1)):
        if tail[j] == "{":
            depth += 1
        elif tail[j] == "}":
            depth -= 1
            if depth == 0:
                return tail[begin:j].strip()
    return None


def last_integer(text: str | None) -> str | None:
    """The last ASCII integer in the last 2,000 chars (`1,234` counts as 1234), for lenient extraction."""
    if not isinstance(text, str) or not text:
        return None
    found = _INT.findall(text[-2_000:])
    return found[-1].replace(",", "") if found else None
