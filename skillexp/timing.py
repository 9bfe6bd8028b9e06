"""Where a run's time and memory go: wall seconds per phase, and the process's peak RSS, written to `timing.json`.

Phases nest, and each second counts once, for the innermost phase open at the time: an engine started inside the
SFT-data build counts as `engine_start`, the rest of the build as `sft_data`. The pipeline opens one phase per stage
(`sft_data`, `sft`, `eval`, `rl`, ...), GRPO splits its steps into `rl_rollout` and `rl_update`, and every engine
start is `engine_start`; whatever no phase claims is `other` (model conversion, start-up, writing the summary). A
stage reused from the cache costs nothing and shows nothing. The report's run table prints these columns, so the
next slow phase is visible (skillexp/report/cli.py).

The peak RSS is the process's high-water mark since the run began: Linux lets a process reset it
(`/proc/self/clear_refs`), so the runs of a multirun in one process each show their own peak, and `start_rss_gib`
(what the process held when the run began, after `release_memory`) shows what earlier runs left behind.
Processes a stage launches (torchrun ranks, scoring workers) are not in it.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator

from skillexp.utils.io import atomic_write_json

TIMING = "timing.json"
OTHER = "other"


class Phases:
    """Exclusive wall time per phase name (see the module docstring)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds: dict[str, float] = {}
        self._open: list[tuple[str, float]] = []  # (name, when its current slice began)
        self.t0 = time.perf_counter()

    def _charge(self, now: float) -> None:
        if self._open:
            name, since = self._open[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - since

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        self._charge(now)
        self._open.append((name, now))
        try:
            yield
        finally:
            now = time.perf_counter()
            self._charge(now)
            self._open.pop()
            if self._open:  # the enclosing phase resumes now
                self._open[-1] = (self._open[-1][0], now)

    def table(self) -> dict[str, float]:
        """Every phase's seconds so far, plus `other`: the rest of the wall time since the reset."""
        now = time.perf_counter()
        seconds = dict(self.seconds)
        if self._open:
            name, since = self._open[-1]
            seconds[name] = seconds.get(name, 0.0) + now - since
        seconds[OTHER] = max(0.0, now - self.t0 - sum(seconds.values()))
        return {k: round(v, 2) for k, v in seconds.items()}


PHASES = Phases()  # this process's; the pipeline resets it when a run starts


def phase(name: str) -> contextlib.AbstractContextManager[None]:
    """`with phase("sft"): ...`: count the block's wall time (less its nested phases') for `name`."""
    return PHASES(name)


def reset_peak_rss() -> bool:
    """Start the process's peak-RSS high-water mark afresh (Linux >= 4.0); False where it cannot be reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_gib(field: str) -> float | None:
    """A memory line of /proc/self/status (kB) in GiB, or None where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def peak_rss_gib() -> float | None:
    """The process's peak RSS (VmHWM) in GiB since the last reset."""
    return _status_gib("VmHWM")


def rss_gib() -> float | None:
    """The process's resident memory now (VmRSS) in GiB."""
    return _status_gib("VmRSS")


def release_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the OS (glibc's malloc_trim): what one run freed
    otherwise stays resident in the process that runs the next."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


_START: dict[str, float | None] = {}


def start_run() -> None:
    """A run begins: phases and the peak RSS start from zero (after freeing what earlier runs left)."""
    release_memory()
    PHASES.reset()
    reset_peak_rss()
    _START["rss_gib"] = rss_gib()


def write_timing(run_dir: Path) -> dict[str, object]:
    """`run_dir/timing.json`: the run's seconds per phase, its wall seconds and its peak RSS."""
    phases = PHASES.table()
    out = {"wall_s": round(sum(phases.values()), 2), "phases_s": phases, "peak_rss_gib": peak_rss_gib(),
           "start_rss_gib": _START.get("rss_gib")}
    atomic_write_json(run_dir / TIMING, out)
    return out
