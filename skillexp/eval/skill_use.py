"""Skill-use metrics for SkillFactory-format outputs (paper Table 4): how many answers a model tries, how often it
reflects, and how right its own verdicts are (precision/recall/F1 of `Correct` and `Incorrect` against the truth
of the attempt each verdict follows).

Model output is untrusted: only the last MAX_CHARS characters are scanned and at most MAX_BLOCKS blocks counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from skillexp.methods.skillfactory.reflect import parse_verdict
from skillexp.tasks.answer import last_tag
from skillexp.tasks.base import Item, Task

MAX_CHARS = 50_000
MAX_BLOCKS = 64


def blocks(text: str) -> list[tuple[str, str]]:
    """(kind, body) of the `<sample>`/`<reflect>` blocks in order; one linear scan (a lazy regex would be
    quadratic on thousands of unclosed tags)."""
    out: list[tuple[str, str]] = []
    pos = 0
    while len(out) < MAX_BLOCKS:
        starts = [(i, k) for k in ("sample", "reflect") if (i := text.find(f"<{k}>", pos)) >= 0]
        if not starts:
            break
        start, kind = min(starts)
        body_start = start + len(kind) + 2
        end = text.find(f"</{kind}>", body_start)
        if end < 0:
            break
        out.append((kind, text[body_start:end]))
        pos = end + len(kind) + 3
    return out


@dataclass
class SkillUse:
    completions: int = 0
    answers: int = 0
    reflections: int = 0
    # (verdict says correct, attempt is correct) counts
    pairs: dict[tuple[bool, bool], int] = field(default_factory=lambda: {(v, t): 0 for v in (True, False)
                                                                         for t in (True, False)})

    def add(self, task: Task, item: Item, completion: str) -> None:
        found = blocks(completion[-MAX_CHARS:])
        self.completions += 1
        samples = sum(kind == "sample" for kind, _ in found)
        self.answers += samples if samples else completion.count("<answer>")
        truth = None
        for kind, body in found:
            if kind == "sample":
                answer = last_tag(body)
                truth = answer is not None and task.check(item, answer)
            else:
                self.reflections += 1
                verdict = parse_verdict(body)
                if verdict is not None and truth is not None:
                    self.pairs[(verdict, truth)] += 1

    def metrics(self) -> dict[str, float]:
        n = max(self.completions, 1)
        out = {"answers_per_completion": self.answers / n, "reflections_per_completion": self.reflections / n}
        for label, positive in (("correct", True), ("incorrect", False)):
            tp = self.pairs[(positive, positive)]
            fp = self.pairs[(positive, not positive)]
            fn = self.pairs[(not positive, positive)]
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            out[f"verdict_{label}_f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return out
