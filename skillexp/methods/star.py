"""`method=star`: sample from the base model and keep the correct answers (STaR's filter, one iteration).

SkillFactory's STaR baseline: the SFT data is the model's own correct samples; at most `keep_per_question`
distinct correct completions per question so easy questions do not dominate.
"""
from __future__ import annotations

from skillexp.generation.base import Completion
from skillexp.tasks.base import Item, Task


def star_rows(task: Task, items: list[Item], completions: list[list[Completion]], scores: list[list[float]],
              keep_per_question: int) -> tuple[list[dict], dict[str, float]]:
    rows, tagged = [], 0
    for item, comps, ss in zip(items, completions, scores):
        seen: set[str] = set()
        for j, (c, s) in enumerate(zip(comps, ss)):
            text = task.tag_answer(c.text)
            if s < 1 or text is None or text in seen or c.truncated or len(seen) >= keep_per_question:
                continue
            seen.add(text)
            tagged += text != c.text
            rows.append({"messages": task.messages(item) + [{"role": "assistant", "content": text}],
                         "question_id": item.id, "sample": j, "source": "star"})
    n = sum(len(c) for c in completions)
    stats = {"star/base_accuracy": sum(map(sum, scores)) / max(n, 1),
             "star/questions_with_a_correct_sample": sum(any(s >= 1 for s in ss) for ss in scores) / max(len(items), 1),
             "star/rows": len(rows), "star/answer_tags_added": tagged}
    return rows, stats
