"""Phase timing: each second counts once, for the innermost phase; the peak RSS restarts with each run."""
from __future__ import annotations

import mmap
import time

from skillexp.timing import OTHER, Phases, peak_rss_gib, reset_peak_rss


def test_nested_phases_count_each_second_once() -> None:
    phases = Phases()
    with phases("sft_data"):
        time.sleep(0.05)
        with phases("engine_start"):
            time.sleep(0.1)
        time.sleep(0.05)
    with phases("sft_data"):  # a phase opened twice adds up
        time.sleep(0.05)
    time.sleep(0.05)  # no phase: other
    table = phases.table()
    assert set(table) == {"sft_data", "engine_start", OTHER}
    assert 0.1 <= table["engine_start"] < 0.3  # upper bounds leave room for a busy machine
    assert 0.15 <= table["sft_data"] < 0.4
    assert 0.05 <= table[OTHER] < 0.25
    assert abs(sum(table.values()) - (time.perf_counter() - phases.t0)) < 0.02


def test_the_peak_rss_restarts_from_the_current_size() -> None:
    if not reset_peak_rss():  # not Linux: nothing to check
        return
    base = peak_rss_gib()
    # fresh pages mapped for this alone (a bytearray may reuse memory the allocator still holds resident), touched:
    # 300 MiB more resident
    block = mmap.mmap(-1, 300 * 2**20)
    for i in range(0, len(block), mmap.PAGESIZE):
        block[i] = 1
    high = peak_rss_gib()
    assert high - base > 0.25
    block.close()
    assert reset_peak_rss()
    assert peak_rss_gib() < high - 0.25  # the block is gone, and so is its peak
