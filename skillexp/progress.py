"""The tool's own progress: one log line per step of a long loop, with its rate and the time left.

Libraries keep their own bars (vLLM's sampling, HF generate); the stages that only we know the length of (SFT
and GRPO steps, the eval suite's variants) say where they are here, through the `skillexp` loggers, so the same
lines reach the console and the run's log file. Lines come at most every `every_s` seconds, and always for the
first and the last step, so a 10,000-step run does not print 10,000 lines.
"""
from __future__ import annotations

import logging
import time


def duration(seconds: float) -> str:
    """12 s, 3m05s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """`what step/total (pct) · metric value ... · rate · ETA` lines for a loop of `total` steps that may resume at
    `start`; the rate counts only steps done in this process."""

    def __init__(self, log: logging.Logger, what: str, total: int, start: int = 0, every_s: float = 5.0):
        self.log, self.what, self.total, self.start, self.every_s = log, what, total, start, every_s
        self.t0 = time.perf_counter()
        self.last = -float("inf")

    def line(self, done: int, **metrics: float) -> str:
        elapsed = time.perf_counter() - self.t0
        parts = [f"{self.what} {done}/{self.total} ({100 * done / max(self.total, 1):.0f}%)"]
        parts += [f"{k} {v:.4g}" for k, v in metrics.items()]
        if done > self.start:
            per_step = elapsed / (done - self.start)
            parts.append(f"{per_step:.1f} s/step" if per_step >= 1 else f"{1 / per_step:.1f} steps/s")
            parts.append(f"ETA {duration(per_step * (self.total - done))}" if done < self.total
                         else f"done in {duration(elapsed)}")
        return " · ".join(parts)

    def due(self, done: int) -> bool:
        """Whether step `done` gets a line (callers skip computing its metrics otherwise)."""
        return done in (self.start + 1, self.total) or time.perf_counter() - self.last >= self.every_s

    def report(self, done: int, **metrics: float) -> None:
        self.log.info(self.line(done, **metrics))
        self.last = time.perf_counter()

    def step(self, done: int, **metrics: float) -> None:
        if self.due(done):
            self.report(done, **metrics)
