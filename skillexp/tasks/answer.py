"""Answer extraction from untrusted model text: bounded in size, linear-time patterns only."""
from __future__ import annotations

import re

MAX_SCAN_CHARS = 20_000  # answers sit at the end; scanning only the tail bounds the cost of huge outputs
MAX_ANSWER_CHARS = 1_000
_TAG_CACHE: dict[str, re.Pattern] = {}


def last_tag(text: str | None, tag: str = "answer") -> str | None:
    """Content of the last complete `<tag>…</tag>` span (stripped), or None when there is none or it is huge."""
    if not text:
        return None
    tail = text[-MAX_SCAN_CHARS:]
    close = tail.rfind(f"</{tag}>")
    if close < 0:
        return None
    open_ = tail.rfind(f"<{tag}>", 0, close)
    if open_ < 0:
        return None
    inner = tail[open_ + len(tag) + 2: close].strip()
    return inner if len(inner) <= MAX_ANSWER_CHARS else None


def last_boxed(text: str | None) -> str | None:
    r"""Content of the last `\boxed{…}` with balanced braces, or None."""
    if not text:
        return None
    tail = text[-MAX_SCAN_CHARS:]
    start = tail.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, min(len(tail), i + MAX_ANSWER_CHARS + 2)):
        if tail[j] == "{":
            depth += 1
        elif tail[j] == "}":
            depth -= 1
            if depth == 0:
                return tail[i + 1: j].strip()
    return None


_INT = re.compile(r"-?\d{1,3}(?:,\d{3})+(?!\d)|-?\d+")


def last_integer(text: str | None) -> str | None:
    """The last integer written in the text (thousands separators allowed), for lenient extraction."""
    if not text:
        return None
    found = _INT.findall(text[-2_000:])
    return found[-1].replace(",", "") if found else None
