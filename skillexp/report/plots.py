"""PNG figures of a report: accuracy per variant, skill use per variant, reward over RL steps, per method.

Rendered with matplotlib's Agg backend (no display needed, safe on cluster nodes). A method keeps its colour in
every figure; pre-RL rows are hatched and lighter, so each RL row sits next to what its SFT stage alone gave.
Layout rules (tests/report/test_plots.py checks each on the figures): accuracy axes span [0, 1] and their error
bars are the cells' 95% intervals, which stay inside it; tick labels never overlap (long variant names wrap at
"_", and turn vertical if they still collide); the legend sits below the axes, inside the figure (fewer columns
until it fits its width); RL-step axes have integer ticks. Each `*_figure` returns the figure, `save` writes it.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from skillexp.report.stats import Stats, curve_band  # noqa: E402

Grid = dict[str, dict[str, "Stats | None"]]  # row label -> column (variant) -> stats over seeds
Colours = dict[str, tuple[float, ...]]
WRAP = 12  # characters per line of a tick label
LEGEND_COLUMNS = 4


def colours(labels: Sequence[str]) -> Colours:
    """One colour per SFT method (the part before " →" / " ("), so a method's rows share it across figures."""
    methods = list(dict.fromkeys(base(label) for label in labels))
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {label: cmap(methods.index(base(label)) % cmap.N) for label in labels}


def base(label: str) -> str:
    return label.split(" →")[0].split(" (pre-RL)")[0]


def wrap(label: str, width: int = WRAP) -> str:
    """A long tick label broken into lines at its underscores (kept at the line ends)."""
    lines = [""]
    for part in label.split("_"):
        if lines[-1] and len(lines[-1]) + len(part) + 1 > width:
            lines[-1] += "_"
            lines.append(part)
        else:
            lines[-1] += ("_" if lines[-1] else "") + part
    return "\n".join(lines)


def grouped_bars(ax: Axes, grid: Grid, columns: list[str], colour: Colours, errors: str) -> None:
    """One group of bars per column, one bar per row; error bars the cells' 95% intervals (`errors="ci"`) or ±1
    std over seeds ("std"), none where the cell has none. The legend gives each row's number of seeds."""
    labels = list(grid)
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        cells = [grid[label].get(c) for c in columns]
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(columns))]
        if errors == "ci":
            below = [s.mean - s.ci_low if s and s.ci_low is not None else 0.0 for s in cells]
            above = [s.ci_high - s.mean if s and s.ci_high is not None else 0.0 for s in cells]
        else:
            below = above = [s.std if s and s.std is not None else 0.0 for s in cells]
        pre = label.endswith("(pre-RL)")
        n = max((s.n for s in cells if s), default=0)
        ax.bar(xs, [s.mean if s else math.nan for s in cells], width, label=f"{label} (n={n})",
               color=colour[label], alpha=0.5 if pre else 0.95, hatch="//" if pre else None, edgecolor="black",
               linewidth=0.4, yerr=[below, above], capsize=2, error_kw={"elinewidth": 0.8})
    ax.set_xticks(range(len(columns)), [wrap(c) for c in columns], fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _figure(n_rows: int, n_columns: int, panels: tuple[int, int] = (1, 1)) -> tuple[Figure, list[Axes]]:
    """Wide enough for every group of bars and its wrapped label (at most 24 inches: then labels turn)."""
    group = max(0.9, 0.2 * n_rows)
    width = min(24.0, max(8.0, 1.5 + group * n_columns * panels[1]))
    fig, axes = plt.subplots(*panels, figsize=(width, 4.2 * panels[0] + 1.2), squeeze=False, layout="constrained")
    return fig, list(axes.flat)


def _overlap(ax: Axes) -> bool:
    boxes = sorted((t.get_window_extent() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()),
                   key=lambda b: b.x0)
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:]))


def _finish(fig: Figure, axes: list[Axes], handles_from: Axes, titles: list[Text]) -> Figure:
    """Titles wrapped to the figure's width, vertical tick labels where they would collide, then the legend under
    the axes in as many columns (up to four) as fit the width; a legend too wide in one column widens the figure."""
    fig.canvas.draw()
    for title in titles:
        if (too_wide := title.get_window_extent().width / fig.bbox.width) > 1:
            lines = title.get_text().split("\n")
            fits = max(20, int(max(map(len, lines)) / too_wide * 0.95))  # characters per line
            title.set_text("\n".join(textwrap.fill(line, fits) for line in lines))
    for ax in axes:
        if _overlap(ax):
            ax.tick_params(axis="x", labelrotation=90)
    handles, labels = handles_from.get_legend_handles_labels()
    for ncol in range(min(LEGEND_COLUMNS, len(labels)), 0, -1):
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False, fontsize=9)
        fig.canvas.draw()
        if legend.get_window_extent().width <= fig.bbox.width or ncol == 1:
            break
        legend.remove()
    if labels and (needed := legend.get_window_extent().width / fig.dpi + 0.2) > fig.get_figwidth():
        fig.set_figwidth(needed)
        fig.canvas.draw()
    return fig


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def accuracy_figure(grid: Grid, columns: list[str], metric: str, title: str, colour: Colours,
                    unit_interval: bool) -> Figure:
    """Grouped bars of `metric` per variant; `unit_interval`: a proportion, drawn on [0, 1]."""
    fig, (ax,) = _figure(len(grid), len(columns))
    grouped_bars(ax, grid, columns, colour, errors="ci")
    ax.set_ylim(0, 1) if unit_interval else ax.set_ylim(bottom=0)
    ax.set_xlabel("task variant (avg = mean over variants)")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    heading = ax.set_title(f"{title}\n{metric} per task variant; error bars: 95% interval (see results.md)")
    return _finish(fig, [ax], ax, [heading])


def skill_use_figure(grids: dict[str, Grid], columns: list[str], title: str, colour: Colours) -> Figure:
    """A 2×2 panel of the skill-use metrics (SkillFactory Table 4), each as grouped bars per variant; F1 on [0, 1]."""
    first = next(iter(grids.values()))
    fig, axes = _figure(len(first), len(columns), panels=(2, 2))
    for ax, (metric, grid) in zip(axes, grids.items()):
        grouped_bars(ax, grid, columns, colour, errors="std")
        ax.set_title(metric)
        ax.set_ylabel("F1" if metric.endswith("f1") else "per completion")
        ax.set_ylim(0, 1) if metric.endswith("f1") else ax.set_ylim(bottom=0)
    for ax in axes[len(grids):]:
        ax.set_visible(False)
    heading = fig.suptitle(f"{title}\nskill use per task variant (mean over seeds, error bars ±1 std)")
    return _finish(fig, axes[: len(grids)], axes[0], [heading])


def rewards_figure(curves: dict[str, list[dict[int, float]]], key: str, title: str, colour: Colours) -> Figure:
    """Mean `key` over seeds per RL step, with a ±1 std band, one line per method; integer step ticks."""
    fig, (ax,) = _figure(0, 0)
    for label, runs in curves.items():
        steps, mean, std = curve_band(runs)
        ax.plot(steps, mean, color=colour[label], label=f"{label} (n={len(runs)})", marker="o" if len(steps) < 30
                else None, markersize=3)
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=colour[label], alpha=0.2, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("RL step")
    ax.set_ylabel(f"{key} (mean over seeds)")
    heading = ax.set_title(f"{title}\n{key} during RL; band ±1 std over seeds")
    ax.grid(alpha=0.3)
    return _finish(fig, [ax], ax, [heading])
