"""The figures' layout, measured on the rendered figures: accuracy axes on [0, 1], no overlapping tick labels, the
legend and titles inside the figure (so inside the saved PNG), integer RL-step ticks."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from skillexp.report.plots import accuracy_figure, colours, rewards_figure, save, skill_use_figure, wrap
from skillexp.report.stats import Stats

LONG_ROWS = ["none (pre-RL)", "none → grpo_cpu", "skillfactory_no_reflections (pre-RL)",
             "skillfactory_no_reflections → grpo_cpu [rl.steps=4, rl.group_size=8]", "stat_sel (pre-RL)",
             "stat_sel → grpo_cpu [rl.steps=4, rl.group_size=8]", "stat_syn → dapo", "star → grpo_cpu", "sft"]
VARIANTS = ["countdown_3", "countdown_4", "countdown_5", "countdown_6", "multiplication_1", "multiplication_2",
            "multiplication_3", "avg"]


def grid(rows: list[str], columns: list[str], mean: float = 0.6, low: float = 0.35, high: float = 0.9):
    return {r: {c: Stats(2, mean, 0.3, low, high, "bootstrap") for c in columns} for r in rows}


def boxes(texts) -> list[Bbox]:
    return [t.get_window_extent() for t in texts if t.get_visible() and t.get_text()]


def overlapping(found: list[Bbox]) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(found) for j, b in enumerate(found[i + 1:], i + 1)
            if a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1]


def shown(ticks, labels, limits) -> list:
    """The tick labels matplotlib draws: those of ticks inside the view limits."""
    lo, hi = sorted(limits)
    return [label for tick, label in zip(ticks, labels) if lo - 1e-9 <= tick <= hi + 1e-9]


def inside(box: Bbox, fig: Figure) -> bool:
    return box.x0 >= -1 and box.y0 >= -1 and box.x1 <= fig.bbox.x1 + 1 and box.y1 <= fig.bbox.y1 + 1


def check_layout(fig: Figure) -> None:
    """Tick labels of each axes apart; legends, titles and every tick label inside the figure."""
    fig.canvas.draw()
    assert fig.legends, "no legend"
    for legend in fig.legends:
        assert inside(legend.get_window_extent(), fig), (legend.get_window_extent(), fig.bbox)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis_labels in (shown(ax.get_xticks(), ax.get_xticklabels(), ax.get_xlim()),
                            shown(ax.get_yticks(), ax.get_yticklabels(), ax.get_ylim())):
            assert overlapping(boxes(axis_labels)) == []
        assert inside(ax.get_tightbbox(), fig)  # what the axes draw: tick labels, axis labels, title
    if fig._suptitle is not None:
        assert inside(fig._suptitle.get_window_extent(), fig)


def test_accuracy_axis_labels_and_legend() -> None:
    fig = accuracy_figure(grid(LONG_ROWS, VARIANTS), VARIANTS, "mean@4", "cpu_study: smollm2-135m-instruct, eval "
                          "countdown_cpu (model.name=smollm2-135m-instruct, generation.temperature=0.7)",
                          colours(LONG_ROWS), unit_interval=True)
    (ax,) = fig.axes
    assert ax.get_ylim() == (0.0, 1.0)
    check_layout(fig)
    # the error bars are the intervals: from 0.35 to 0.9 around the 0.6 bars
    caps = sorted({round(y, 6) for line in ax.lines for y in line.get_ydata()})
    assert caps == [0.35, 0.9]


def test_accuracy_axis_stays_on_the_unit_interval_for_low_values() -> None:
    """Small accuracies would get an autoscaled [0, 0.1] axis that exaggerates differences."""
    rows = ["none → grpo_cpu", "sft → grpo_cpu"]
    title = "a_sweep_with_a_long_name: " + ", ".join(f"setting_key_{i}=value_{i}" for i in range(8))  # wraps
    fig = accuracy_figure(grid(rows, ["countdown_3", "avg"], 0.02, 0.0, 0.05), ["countdown_3", "avg"], "greedy",
                          title, colours(rows), unit_interval=True)
    assert fig.axes[0].get_ylim() == (0.0, 1.0)
    check_layout(fig)
    tokens = accuracy_figure(grid(rows, ["avg"], 180.0, 150.0, 210.0), ["avg"], "mean_tokens", "t", colours(rows),
                             unit_interval=False)
    assert tokens.axes[0].get_ylim()[0] == 0.0 and tokens.axes[0].get_ylim()[1] > 200


@pytest.mark.parametrize("extra", ["", "x" * 250])
def test_a_long_legend_fits_the_figure(extra: str) -> None:
    """Long method labels in a narrow figure: fewer legend columns; one label wider than the figure widens it."""
    rows = LONG_ROWS + ([f"method {extra}"] if extra else [])
    fig = accuracy_figure(grid(rows, ["countdown_3", "avg"]), ["countdown_3", "avg"], "mean@4", "t", colours(rows),
                          unit_interval=True)
    check_layout(fig)
    assert fig.legends[0]._ncols < 4
    assert bool(fig.get_figwidth() > 8.0) == bool(extra)


def test_many_variants_turn_their_labels() -> None:
    columns = [f"multiplication_with_carry_{d}_digits" for d in range(1, 40)] + ["avg"]
    rows = ["sft", "none (pre-RL)"]
    fig = accuracy_figure(grid(rows, columns), columns, "mean@4", "wide", colours(rows), unit_interval=True)
    assert {t.get_rotation() for t in fig.axes[0].get_xticklabels()} == {90.0}
    check_layout(fig)


def test_wrap() -> None:
    assert wrap("countdown_3") == "countdown_3"
    assert wrap("multiplication_3") == "multiplication_\n3"
    assert wrap("a_very_long_variant_name_7") == "a_very_long_\nvariant_name_\n7"


def test_skill_use_panels() -> None:
    metrics = ["answers_per_completion", "reflections_per_completion", "verdict_correct_f1", "verdict_incorrect_f1"]
    grids = {m: grid(LONG_ROWS, VARIANTS, 0.4 if m.endswith("f1") else 2.5, 0.3, 0.5) for m in metrics}
    fig = skill_use_figure(grids, VARIANTS, "skill use", colours(LONG_ROWS))
    limits = {ax.get_title(): ax.get_ylim() for ax in fig.axes if ax.get_visible()}
    assert limits["verdict_correct_f1"] == limits["verdict_incorrect_f1"] == (0.0, 1.0)
    assert limits["answers_per_completion"][0] == 0.0
    check_layout(fig)


@pytest.mark.parametrize("steps", [2, 3, 7, 250])
def test_reward_steps_are_integers(steps: int) -> None:
    curves = {"none → grpo_cpu": [{s: 0.1 * s for s in range(1, steps + 1)}],
              "skillfactory_no_reflections → grpo_cpu [rl.steps=4, rl.group_size=8]": [{1: 0.2}, {1: 0.3, 2: 0.4}]}
    fig = rewards_figure(curves, "rl/reward_mean", "rewards", colours(list(curves)))
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    check_layout(fig)


def test_saved_png_is_the_whole_figure(tmp_path: Path) -> None:
    """`save` writes the figure as laid out: the PNG's size is the figure's, so what is inside the figure (the
    legend, by check_layout) is inside the image."""
    fig = accuracy_figure(grid(LONG_ROWS, VARIANTS), VARIANTS, "mean@4", "t", colours(LONG_ROWS), unit_interval=True)
    width, height = fig.get_figwidth() * 120, fig.get_figheight() * 120
    path = save(fig, tmp_path / "accuracy.png")
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (round(width), round(height))
