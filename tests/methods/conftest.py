"""A student for the data-building methods: the tiny model after memorising a few Countdown questions.

A random tiny model never answers correctly, so the fixture fine-tunes it on the reference solutions of the train
questions under all four prompt variants, and on reflections that end in the right verdict: a student that
sometimes succeeds and can judge itself, which is what SkillFactory's data construction needs. The task has val and
rl questions it never saw (STAT's difficult questions, GRPO's prompts).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from skillexp.methods.skillfactory.reflect import reflection_messages
from skillexp.tasks import build_task
from tests.methods.memorize import memorize

TASK = {"kind": "countdown", "num_numbers": 3, "num_train": 8, "num_rl": 8, "num_val": 4, "num_test": 4}
VARIANTS = ("original", "plan_and_execute", "alternatively", "rephrase")


@pytest.fixture(scope="session")
def memorizer(tmp_path_factory, tiny_model_dir: Path) -> Path:
    task = build_task("countdown", {k: v for k, v in TASK.items() if k != "kind"})
    rows = []
    items = task.items("train")
    for item, other in zip(items, items[1:] + items[:1]):
        ref, wrong = task.reference_solution(item), task.reference_solution(other)
        rows += [{"messages": task.messages(item, v) + [{"role": "assistant", "content": ref}]} for v in VARIANTS]
        for attempt, verdict in ((ref, "Correct"), (wrong, "Incorrect")):
            rows += [{"messages": reflection_messages(item.question, attempt) + [
                {"role": "assistant", "content": f"Checked. <verdict>{verdict}</verdict>"}]}] * 2
    return memorize(rows, tiny_model_dir, tmp_path_factory.mktemp("memorizer"))
