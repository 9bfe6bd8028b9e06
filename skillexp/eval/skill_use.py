"""Skill-use metrics for SkillFactory-format outputs (paper Table 4): how many answers a model tries, how often it
reflects, and how right its own verdicts are (precision/recall/F1 of `Correct` and `Incorrect` against the truth
of the attempt each verdict follows).

Model output is untrusted: the block scan (`traces.format.blocks`) reads only the end of a completion and stops
after a fixed number of blocks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from skillexp.traces.format import ANSWER_OPEN, SAMPLE, blocks, parse_verdict
from skillexp.tasks.answer import last_tag
from skillexp.tasks.base import Item, Task


@dataclass
class SkillUse:
    completions: int = 0
    answers: int = 0
    reflections: int = 0
    # (verdict says correct, attempt is correct) counts
    pairs: dict[tuple[bool, bool], int] = field(default_factory=lambda: {(v, t): 0 for v in (True, False)
                                                                         for t in (True, False)})

    def add(self, task: Task, item: Item, completion: str) -> None:
        found = blocks(completion)
        self.completions += 1
        samples = sum(kind == SAMPLE for kind, _ in found)
        self.answers += samples if samples else completion.count(ANSWER_OPEN)
        truth = None
        for kind, body in found:
            if kind == SAMPLE:
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
