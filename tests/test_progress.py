"""The tool's progress lines: position, metrics, rate and time left; at most one every `every_s` seconds."""
from __future__ import annotations

import logging

import pytest

from skillexp import progress
from skillexp.progress import Progress, duration


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (59.4, "59 s"), (61, "1m01s"), (3599, "59m59s"),
                                               (3720, "1h02m")])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_lines_show_rate_and_eta_and_are_throttled(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    p = Progress(logging.getLogger("skillexp.test"), "SFT step", total=10, start=2, every_s=5)
    with caplog.at_level(logging.INFO, logger="skillexp.test"):
        for step in range(3, 11):
            now[0] += 2.0  # 2 s a step
            p.step(step, loss=1.23456)
    lines = [r.getMessage() for r in caplog.records]
    # the first step after a resume, then one every >= 5 s, and the last
    assert lines[0] == "SFT step 3/10 (30%) · loss 1.235 · 2.0 s/step · ETA 14 s"
    assert [line.split(" (")[0] for line in lines] == ["SFT step 3/10", "SFT step 6/10", "SFT step 9/10",
                                                       "SFT step 10/10"]
    assert lines[-1].endswith("done in 16 s")
