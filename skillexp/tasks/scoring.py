"""Score completions in worker processes.

Workers call `task.score` from their own main thread, which math-verify's signal-based timeouts require, and keep
untrusted text away from the process that holds the model. Workers are spawned (never forked: the parent may hold
vLLM and torch threads). A stall guard bounds the wall-clock time: if no chunk finishes for `timeout_s`, the pool
is killed and replaced, and every unfinished completion scores 0 and is counted in `timeouts`.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Sequence

from skillexp.tasks.base import Item, Task

log = logging.getLogger(__name__)


def _score_chunk(task: Task, items: Sequence[Item], completions: Sequence[str]) -> list[float]:
    return [task.score(item, text) for item, text in zip(items, completions)]


class ScorePool:
    """`with ScorePool(workers=2) as pool: pool.score(task, items, completions)`; workers=0 scores in-process."""

    def __init__(self, workers: int = 2, timeout_s: float = 60.0, chunk_size: int = 64):
        self.workers = workers
        self.timeout_s = timeout_s
        self.chunk_size = chunk_size
        self.timeouts = 0  # completions scored 0 because the stall guard fired
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> "ScorePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))
        return self._executor

    def _kill(self) -> None:
        if self._executor is not None:
            for proc in list(getattr(self._executor, "_processes", {}).values()):
                proc.kill()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def score(self, task: Task, items: Sequence[Item], completions: Sequence[str]) -> list[float]:
        if len(items) != len(completions):
            raise ValueError(f"{len(items)} items but {len(completions)} completions")
        if self.workers == 0:
            return _score_chunk(task, items, completions)
        # chunks small enough to spread over the workers, large enough to amortise pickling
        size = max(1, min(self.chunk_size, -(-len(items) // (4 * self.workers))))
        pool = self._pool()
        futures: dict[Future, int] = {
            pool.submit(_score_chunk, task, items[i:i + size], completions[i:i + size]): i
            for i in range(0, len(items), size)
        }
        scores = [0.0] * len(items)
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=self.timeout_s, return_when=FIRST_COMPLETED)
            if not done:  # stalled: something hangs in a worker
                lost = sum(min(size, len(items) - futures[f]) for f in pending)
                self.timeouts += lost
                log.warning("scoring stalled for %.0f s: killing workers, %d completions score 0", self.timeout_s, lost)
                self._kill()
                break
            for f in done:
                start = futures[f]
                scores[start:start + size] = f.result()
        return scores
