"""Skill-use metrics on hand-written SkillFactory-format outputs."""
from __future__ import annotations

import pytest

from skillexp.eval.skill_use import SkillUse
from skillexp.tasks import build_task
from skillexp.tasks.base import Item

TASK = build_task("countdown", {"num_numbers": 3})
ITEM = Item(id="x", question="", answer="(3 + 5) * 2", meta={"numbers": [3, 5, 2], "target": 16})


def block(answer: str, verdict: str) -> str:
    return (f"<sample>\ntry <answer>{answer}</answer>\n</sample>\n"
            f"<reflect>\ncheck <verdict>{verdict}</verdict>\n</reflect>\n")


def test_counts_and_verdict_f1() -> None:
    use = SkillUse()
    # wrong attempt judged Incorrect (right), right attempt judged Correct (right)
    use.add(TASK, ITEM, "<think>\n" + block("3 + 5", "Incorrect") + block("(3 + 5) * 2", "Correct")
            + "</think>\n<answer>(3 + 5) * 2</answer>")
    # wrong attempt judged Correct (wrong)
    use.add(TASK, ITEM, "<think>\n" + block("3 * 5", "Correct") + "</think>\n<answer>3 * 5</answer>")
    # a plain answer: one answer, no reflections
    use.add(TASK, ITEM, "<answer>16</answer>")
    m = use.metrics()
    assert m["answers_per_completion"] == pytest.approx((2 + 1 + 1) / 3)
    assert m["reflections_per_completion"] == pytest.approx(3 / 3)
    # Correct: tp=1, fp=1, fn=0 -> P=0.5, R=1 -> F1=2/3. Incorrect: tp=1, fp=0, fn=1 -> P=1, R=0.5 -> F1=2/3
    assert m["verdict_correct_f1"] == pytest.approx(2 / 3)
    assert m["verdict_incorrect_f1"] == pytest.approx(2 / 3)


def test_garbage_is_bounded() -> None:
    use = SkillUse()
    use.add(TASK, ITEM, "<sample>" * 100_000 + "<reflect><verdict>Correct</verdict></reflect>")
    use.add(TASK, ITEM, "<reflect><verdict>Correct</verdict></reflect>")  # a verdict with no attempt before it
    assert use.metrics()["verdict_correct_f1"] == 0.0
