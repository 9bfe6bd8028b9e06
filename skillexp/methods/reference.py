"""`method=sft`: the task's reference solutions, formatted like a model answer, as the SFT data."""
from __future__ import annotations

from skillexp.tasks.base import Item, Task


def reference_rows(task: Task, items: list[Item]) -> list[dict]:
    return [{"messages": task.messages(it) + [{"role": "assistant", "content": task.reference_solution(it)}],
             "question_id": it.id, "source": "reference"} for it in items]
