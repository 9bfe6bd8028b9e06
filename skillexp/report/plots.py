"""PNG figures of a report: accuracy per variant, skill use per variant, reward over RL steps, per method.

Rendered with matplotlib's Agg backend (no display needed, safe on cluster nodes). A method keeps its colour in
every figure; pre-RL rows are hatched and lighter, so each RL row sits next to what its SFT stage alone gave.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from skillexp.report.stats import Stats, curve_band  # noqa: E402

Grid = dict[str, dict[str, "Stats | None"]]  # row label -> column (variant) -> stats over seeds
Colours = dict[str, tuple[float, ...]]


def colours(labels: Sequence[str]) -> Colours:
    """One colour per SFT method (the part before " →" / " ("), so a method's rows share it across figures."""
    methods = list(dict.fromkeys(base(label) for label in labels))
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {label: cmap(methods.index(base(label)) % cmap.N) for label in labels}


def base(label: str) -> str:
    return label.split(" →")[0].split(" (pre-RL)")[0]


def grouped_bars(ax: Axes, grid: Grid, columns: list[str], colour: Colours) -> None:
    """One group of bars per column, one bar per row, error bars ±1 std over seeds (none with one seed); the
    legend gives each row's number of seeds."""
    labels = list(grid)
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        stats = [grid[label].get(c) for c in columns]
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(columns))]
        pre = label.endswith("(pre-RL)")
        n = max((s.n for s in stats if s), default=0)
        ax.bar(xs, [s.mean if s else 0.0 for s in stats], width, label=f"{label} (n={n})", color=colour[label],
               alpha=0.5 if pre else 0.95, hatch="//" if pre else None, edgecolor="black", linewidth=0.4,
               yerr=[s.std if s and s.std is not None else 0.0 for s in stats], capsize=2,
               error_kw={"elinewidth": 0.8})
    ax.set_xticks(range(len(columns)), columns, rotation=30 if len(columns) > 4 else 0, ha="right"
                  if len(columns) > 4 else "center")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _figure(n_bars: int, panels: tuple[int, int] = (1, 1)) -> tuple[Figure, list[Axes]]:
    width = min(22.0, max(8.0, 2.0 + 0.18 * n_bars * panels[1]))
    fig, axes = plt.subplots(*panels, figsize=(width, 4.2 * panels[0] + 1.2), squeeze=False)
    return fig, list(axes.flat)


def _save(fig: Figure, path: Path, handles_from: Axes, n_labels: int) -> Path:
    """The legend under the axes (many methods do not fit beside them), then the PNG."""
    handles, labels = handles_from.get_legend_handles_labels()
    ncol = min(4, max(n_labels, 1))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    legend_inches = 0.15 + 0.22 * -(-n_labels // ncol)
    fig.tight_layout(rect=(0, min(0.5, legend_inches / fig.get_figheight()), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_accuracy(path: Path, grid: Grid, columns: list[str], metric: str, title: str, colour: Colours) -> Path:
    fig, (ax,) = _figure(len(grid) * len(columns))
    grouped_bars(ax, grid, columns, colour)
    ax.set_xlabel("task variant (avg = mean over variants)")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.set_title(f"{title}\n{metric} per task variant; error bars ±1 std over seeds")
    return _save(fig, path, ax, len(grid))


def plot_skill_use(path: Path, grids: dict[str, Grid], columns: list[str], title: str, colour: Colours) -> Path:
    """A 2×2 panel of the skill-use metrics (SkillFactory Table 4), each as grouped bars per variant."""
    first = next(iter(grids.values()))
    fig, axes = _figure(len(first) * len(columns), panels=(2, 2))
    for ax, (metric, grid) in zip(axes, grids.items()):
        grouped_bars(ax, grid, columns, colour)
        ax.set_title(metric)
        ax.set_ylabel("F1" if metric.endswith("f1") else "per completion")
    for ax in axes[len(grids):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}\nskill use per task variant (mean over seeds, error bars ±1 std)")
    return _save(fig, path, axes[0], len(first))


def plot_rewards(path: Path, curves: dict[str, list[dict[int, float]]], key: str, title: str,
                 colour: Colours) -> Path:
    """Mean `key` over seeds per RL step, with a ±1 std band, one line per method."""
    fig, (ax,) = _figure(0)
    for label, runs in curves.items():
        steps, mean, std = curve_band(runs)
        ax.plot(steps, mean, color=colour[label], label=f"{label} (n={len(runs)})", marker="o" if len(steps) < 30
                else None, markersize=3)
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=colour[label], alpha=0.2, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("RL step")
    ax.set_ylabel(f"{key} (mean over seeds)")
    ax.set_title(f"{title}\n{key} during RL; band ±1 std over seeds")
    ax.grid(alpha=0.3)
    return _save(fig, path, ax, len(curves))
