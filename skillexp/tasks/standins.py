"""Small generated stand-ins for the hub datasets and local files a run reads, in each source's own schema,
written where `skillexp data prepare` (or the user, for local files) would put them: `skillexp data prepare
--stand-ins <overrides>` for a recipe's CPU twin, which runs offline, and the tests. Questions are simple sums with
their answers, so a checker can tell right from wrong; nothing here is copied from the real datasets, and no
number a run computes on them says anything about the real ones."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Iterable

from skillexp.tasks.base import Task
from skillexp.tasks.gsm8k import Gsm8kTask
from skillexp.tasks.multiple_choice import MultipleChoiceTask
from skillexp.tasks.openthoughts import OpenThoughtsTask
from skillexp.tasks.sources import prepared_file


def fake_rows(task: Task, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` rows in the schema the task's config reads (its field names; GSM8K's `####`, CSQA's choices)."""
    c = task.cfg
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        question = f"Question {i}: what is {a} + {b}?"
        if isinstance(task, MultipleChoiceTask) and c.format == "gpqa":
            rows.append({"Question": question, "Correct Answer": str(a + b),
                         **{f"Incorrect Answer {j}": str(a + b + j) for j in (1, 2, 3)}})
        elif isinstance(task, MultipleChoiceTask):
            texts = [str(a + b + d) for d in (0, 1, 2, 3, 4)]
            rng.shuffle(texts)
            rows.append({"id": f"q{i}", "question": question, "question_concept": "sum",
                         "choices": {"label": list("ABCDE"), "text": texts},
                         "answerKey": "ABCDE"[texts.index(str(a + b))]})
        elif isinstance(task, OpenThoughtsTask):  # OpenThoughts3: turns, the gold boxed after QwQ's </think>
            trace = f"<think>\nAdd {a} and {b}: maybe $\\boxed{{{a}}}$? No.\n</think>\n\nSo $\\boxed{{{a + b}}}$."
            turns = [{"from": "human", "value": question}, {"from": "gpt", "value": trace}]
            rows.append({c.conversations_field: turns, "domain": "math", "source": "stand-in", "difficulty": i % 10})
        elif isinstance(task, Gsm8kTask):
            rows.append({c.question_field: question, c.answer_field: f"{a} + {b} = {a + b}\n#### {a + b}"})
        else:  # the math family: a worked solution or a bare answer, as the field's name says
            gold = f"We add: $\\boxed{{{a + b}}}$." if c.answer_field == "solution" else str(a + b)
            row = {c.question_field: question, c.answer_field: gold}
            for field in (c.subject_field, c.level_field):
                if field:
                    row[field] = "Algebra" if field in ("type", "subject") else "Level 2"
            rows.append(row)
    return rows


def write_stand_ins(tasks: Iterable[Task], data_dir: Path, n: int = 12) -> list[Path]:
    """Generated files for every hub dataset and local file `tasks` read, where they read them; their paths."""
    written = []
    for task in tasks:
        for src in task.sources():
            path = prepared_file(src.path, src.hf_config, src.hf_split, data_dir) if src.hub else Path(src.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in fake_rows(task, n)), encoding="utf-8")
            written.append(path)
    return written
