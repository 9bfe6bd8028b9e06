"""ScorePool: the same scores as in-process, and hanging, dying or buggy scorers are contained."""
from __future__ import annotations

import os
import random
import time

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool, score_in_process


class StubbornTask(Task):
    """Scores 1, except: 'hang' never returns (a runaway parser), 'die' kills its process, 'bug' raises."""

    def __init__(self) -> None:
        super().__init__("stubborn")

    def _build_splits(self) -> dict[str, list[Item]]:
        return {}

    def check(self, item: Item, answer: str) -> bool:
        return True

    def score(self, item: Item, completion: str) -> float:
        if completion == "hang":
            time.sleep(3600)
        if completion == "die":
            os._exit(3)
        if completion == "bug":
            raise ZeroDivisionError("a bug in a task")
        return 1.0

    def reference_solution(self, item: Item) -> str:
        return ""


ITEM = Item(id="a", question="", answer="")


def test_pool_matches_in_process_on_a_mixed_batch() -> None:
    task = build_task("countdown", {"num_numbers": 4, "lenient": True})
    items = task.items("test")[:300]
    rng = random.Random(0)
    junk = ["<answer>1 + 1</answer>", "<answer>9**9**9</answer>", "(" * 5000, "", "(3 + 5) * 2"]
    completions = [task.reference_solution(i) if rng.random() < 0.5 else rng.choice(junk) for i in items]
    expected = score_in_process(task, items, completions)
    assert 0 < sum(expected) < len(items)
    with ScorePool(workers=0) as local, ScorePool(workers=2, chunk_size=16) as pool:
        assert local.score(task, items, completions) == expected
        assert pool.score(task, items, completions) == expected
        mult = build_task("multiplication", {"digits": 2})  # the same workers serve another task next
        m_items = mult.items("test")[:50]
        m_comps = [mult.reference_solution(i) if n % 2 else "<answer>0</answer>" for n, i in enumerate(m_items)]
        assert pool.score(mult, m_items, m_comps) == [float(n % 2) for n in range(50)]
        assert pool.score(task, [], []) == []
        assert pool.lost == 0
    with pytest.raises(ValueError, match="completions"):
        ScorePool(workers=0).score(task, items, completions[:-1])


def test_hanging_worker_is_killed_and_scored_zero() -> None:
    start = time.perf_counter()
    with ScorePool(workers=2, timeout_s=1.5, chunk_size=1) as pool:
        scores = pool.score(StubbornTask(), [ITEM] * 6, ["ok", "hang", "ok", "ok", "ok", "ok"])
        assert scores == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0] and pool.lost == 1
        # both workers hang at once: the backlog still gets scored by their replacements
        scores = pool.score(StubbornTask(), [ITEM] * 6, ["hang", "hang", "ok", "ok", "ok", "ok"])
        assert scores == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0] and pool.lost == 3
    assert time.perf_counter() - start < 15


def test_dying_worker_is_replaced_and_its_completions_score_zero() -> None:
    with ScorePool(workers=2, timeout_s=30, chunk_size=1) as pool:
        scores = pool.score(StubbornTask(), [ITEM] * 5, ["ok", "die", "ok", "die", "ok"])
        assert scores == [1.0, 0.0, 1.0, 0.0, 1.0] and pool.lost == 2


def test_a_buggy_task_raises_in_the_parent() -> None:
    with ScorePool(workers=1) as pool, pytest.raises(RuntimeError, match="ZeroDivisionError: a bug in a task"):
        pool.score(StubbornTask(), [ITEM] * 3, ["ok", "bug", "ok"])


def test_defaults() -> None:
    assert ScorePool().workers == os.cpu_count()
    with pytest.raises(ValueError):
        ScorePool(timeout_s=0)
