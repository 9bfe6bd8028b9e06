"""Score completions in worker processes, with a wall-clock guard against runaway checkers.

Why processes: math-verify's timeouts use `signal.alarm`, which works only in a process's main thread; a
C-level computation (a huge integer power inside sympy) cannot be interrupted by any signal, only killed; and
untrusted text stays away from the process that holds the model. Workers are spawned, never forked: the parent
may hold vLLM and torch threads.

Each worker takes one chunk at a time over its own pipe and streams scores back as it goes (whenever FLUSH_S has
passed since its last report). A busy worker that reports nothing for `timeout_s` (so, in effect, one completion
that takes that long) is killed and replaced; the completions of its chunk that it had not reported score 0 and
are counted in `lost`, as are those of a worker that dies. Other workers keep going, so a hostile completion
costs at most one chunk, not the batch.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Annotated, Any, Sequence

from skillexp.tasks.base import Item, Task
from skillexp.utils.schema import NON_NEGATIVE, POSITIVE, UNKEYED

log = logging.getLogger(__name__)
FLUSH_S = 0.05
STARTUP_TIMEOUT_S = 120.0


@dataclass
class ScoringConfig:
    """`scoring.*`: the task checkers' worker processes, for every stage that scores (data building, GRPO, eval)."""

    workers: Annotated[int, NON_NEGATIVE, UNKEYED] = 2  # processes scoring completions; 0 = in-process
    # seconds a worker may go without progress (about one completion) before it is killed and the rest of its chunk
    # scores 0 (counted as lost); a bound on hostile input, whose effect depends on the machine, not on the config
    timeout_s: Annotated[float, POSITIVE, UNKEYED] = 60.0

    def pool(self) -> ScorePool:
        return ScorePool(workers=self.workers, timeout_s=self.timeout_s)


def score_in_process(task: Task, items: Sequence[Item], completions: Sequence[str]) -> list[float]:
    """The plain path for pure-Python tasks, or any task from a main thread."""
    if len(items) != len(completions):
        raise ValueError(f"{len(items)} items but {len(completions)} completions")
    return [float(task.score(item, text)) for item, text in zip(items, completions)]


def _worker_main(conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pool
    conn.send(("ready", None))  # start-up (spawn, imports) must not count against the guard
    task: Task | None = None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        except Exception:  # noqa: BLE001 - the task could not be unpickled here (e.g. its module is not importable)
            conn.send(("error", traceback.format_exc()))
            continue
        if msg is None:
            return
        new_task, items, completions = msg
        task = new_task if new_task is not None else task
        out: list[float] = []
        last = time.monotonic()
        try:
            for item, text in zip(items, completions):
                out.append(float(task.score(item, text)))
                if time.monotonic() - last > FLUSH_S:
                    conn.send(("ok", out))
                    out, last = [], time.monotonic()
            if out:
                conn.send(("ok", out))
        except Exception:  # noqa: BLE001 - a bug in a task (score must not raise): report it to the parent
            conn.send(("error", traceback.format_exc()))


@dataclass
class _Worker:
    proc: Any  # a SpawnProcess
    conn: Connection
    task: Task | None = None  # the task this worker holds, so it is pickled once per worker and score call
    start: int = 0  # the chunk being scored: completions [start, end); done counts those reported
    end: int = 0
    done: int = 0
    last: float = 0.0  # when the worker last reported progress

    @property
    def busy(self) -> bool:
        return self.start + self.done < self.end


class ScorePool:
    """`with ScorePool(workers=2) as pool: pool.score(task, items, completions)`; workers=0 scores in-process.

    Workers start lazily and are reused across calls; `lost` accumulates completions scored 0 by the guard.
    """

    def __init__(self, workers: int | None = None, timeout_s: float = 60.0, chunk_size: int = 64):
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        if self.workers < 0 or timeout_s <= 0 or chunk_size < 1:
            raise ValueError("need workers >= 0, timeout_s > 0 and chunk_size >= 1")
        self.timeout_s = timeout_s
        self.chunk_size = chunk_size
        self.lost = 0
        self._ctx = mp.get_context("spawn")
        self._pool: list[_Worker] = []

    def __enter__(self) -> ScorePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop idle workers politely and kill busy ones (they may be hung)."""
        for w in self._pool:
            if not w.busy:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in self._pool:
            if not w.busy:
                w.proc.join(timeout=2)
            self._kill(w)
        self._pool = []

    def _start(self, count: int) -> None:
        """Start `count` workers in parallel and wait until each has imported what it needs."""
        new = []
        for _ in range(count):
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True, name="skillexp-score")
            proc.start()
            child.close()
            new.append(_Worker(proc, parent))
        self._pool += new
        for w in new:
            try:
                ready = w.conn.poll(STARTUP_TIMEOUT_S) and w.conn.recv()[0] == "ready"
            except (EOFError, OSError):
                ready = False
            if not ready:
                raise RuntimeError(f"a scoring worker did not start within {STARTUP_TIMEOUT_S:.0f} s")

    @staticmethod
    def _kill(w: _Worker) -> None:
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(timeout=5)
        w.conn.close()

    def _drop(self, w: _Worker, why: str) -> None:
        """Kill a hung or dead worker; its unreported completions keep their score 0 and are counted."""
        lost = w.end - w.start - w.done
        self.lost += lost
        log.warning("scoring worker %s: killed, %d completions score 0", why, lost)
        self._kill(w)
        self._pool.remove(w)

    def _assign(self, w: _Worker, task: Task, items: Sequence[Item], completions: Sequence[str],
                todo: deque[tuple[int, int]]) -> None:
        w.start, w.end = todo.popleft()
        w.done, w.last = 0, time.monotonic()
        try:
            w.conn.send((task if w.task is not task else None, items[w.start:w.end], completions[w.start:w.end]))
        except OSError:  # the worker died while idle (e.g. the OOM killer)
            self._drop(w, "gone")
            return
        w.task = task

    def score(self, task: Task, items: Sequence[Item], completions: Sequence[str]) -> list[float]:
        """Scores in the order of `items`; never slower than ~timeout_s per hung worker."""
        if len(items) != len(completions):
            raise ValueError(f"{len(items)} items but {len(completions)} completions")
        if self.workers == 0:
            return score_in_process(task, items, completions)
        try:
            return self._score(task, items, completions)
        except BaseException:  # a task bug or Ctrl-C: no worker may keep a chunk of this call
            self.close()
            raise

    def _score(self, task: Task, items: Sequence[Item], completions: Sequence[str]) -> list[float]:
        n = len(items)
        size = max(1, min(self.chunk_size, -(-n // (4 * self.workers))))  # >= 4 chunks per worker when small
        todo = deque((i, min(i + size, n)) for i in range(0, n, size))
        scores = [0.0] * n
        for w in self._pool:
            w.task = None  # a previous call may have been a different task object
        while todo or any(w.busy for w in self._pool):
            if todo and len(self._pool) < self.workers:
                self._start(min(self.workers - len(self._pool), len(todo)))
            for w in list(self._pool):
                if todo and not w.busy:
                    self._assign(w, task, items, completions, todo)
            busy = [w for w in self._pool if w.busy]
            if not busy:
                continue
            deadline = min(w.last for w in busy) + self.timeout_s
            ready = wait([w.conn for w in busy], timeout=max(0.0, deadline - time.monotonic()))
            for w in busy:
                if w.conn in ready:
                    try:
                        status, payload = w.conn.recv()
                    except (EOFError, OSError):
                        self._drop(w, "died")
                        continue
                    if status == "error":
                        raise RuntimeError(f"task {task.name!r} raised in a scoring worker:\n{payload}")
                    at = w.start + w.done
                    scores[at:at + len(payload)] = payload
                    w.done += len(payload)
                    w.last = time.monotonic()
                elif time.monotonic() - w.last >= self.timeout_s:
                    self._drop(w, f"silent for {self.timeout_s:.0f} s")
        return scores
