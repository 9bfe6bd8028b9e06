"""The BOLT baseline's shipped in-context examples for Countdown: ten long-CoT traces, each in the trace format and
each solving its own question under the task's checker."""
from __future__ import annotations

import json
import re
from pathlib import Path

from skillexp.tasks import build_task
from skillexp.tasks.base import Item

EXAMPLES = Path(__file__).resolve().parents[2] / "skillexp" / "data" / "bolt" / "countdown.jsonl"
FORMAT = re.compile(r"\A<think>\n.+\n</think>\n\n<answer>[^<]+</answer>\Z", re.DOTALL)


def test_bolt_countdown_examples() -> None:
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    assert len(rows) == 10
    assert all(set(row) == {"question", "response"} for row in rows)
    assert len({row["question"] for row in rows}) == len(rows)
    task = build_task("countdown", {"num_numbers": 3})
    for row in rows:
        assert FORMAT.match(row["response"]), row["question"]
        item = task.read_question(Item(id="bolt", question=row["question"], answer=""))
        assert len(item.meta["numbers"]) == 3, row["question"]
        assert task.score(item, row["response"]) == 1.0, row["question"]
