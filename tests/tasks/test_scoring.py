"""ScorePool: the same scores as in-process, and a hanging scorer is killed and scored 0."""
from __future__ import annotations

import time

from skillexp.tasks import build_task
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool


class SleepyTask(Task):
    """Scores 1, except completions that say 'hang', which never return (a stand-in for a runaway parser)."""

    def __init__(self) -> None:
        super().__init__("sleepy")

    def _build_splits(self):
        return {}

    def check(self, item: Item, answer: str) -> bool:
        return True

    def score(self, item: Item, completion: str) -> float:
        if completion == "hang":
            time.sleep(3600)
        return 1.0

    def reference_solution(self, item: Item) -> str:
        return ""


def test_pool_matches_in_process() -> None:
    task = build_task("countdown", {"num_numbers": 4, "lenient": True})
    items = task.items("test")[:200]
    completions = [task.reference_solution(i) if n % 3 else "<answer>1 + 1</answer>" for n, i in enumerate(items)]
    with ScorePool(workers=0) as local, ScorePool(workers=2) as pool:
        assert pool.score(task, items, completions) == local.score(task, items, completions)


def test_hanging_worker_is_killed_and_scored_zero() -> None:
    item = Item(id="a", question="", answer="")
    start = time.perf_counter()
    with ScorePool(workers=2, timeout_s=2, chunk_size=1) as pool:
        scores = pool.score(SleepyTask(), [item] * 4, ["ok", "hang", "ok", "ok"])
        assert scores[1] == 0.0 and pool.timeouts >= 1
        # the pool is replaced and keeps working
        assert pool.score(SleepyTask(), [item] * 3, ["ok"] * 3) == [1.0] * 3
    assert time.perf_counter() - start < 20
