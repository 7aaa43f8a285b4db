"""Training scalars against the step: the evaluation metric per evaluation (first), loss, learning
rates, the margin loss's beta, active tuples."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from dml.viz.figures import new_figure

PANEL = (4.0, 2.8)
COLUMNS = 3


def curves_size(n_series: int) -> tuple[float, float]:
    """(width, height) in inches of the figure for `n_series` panels."""
    cols = min(COLUMNS, max(1, n_series))
    rows = max(1, math.ceil(n_series / COLUMNS))
    return PANEL[0] * cols, PANEL[1] * rows + 0.4


def training_curves_figure(
    history: Mapping[str, Sequence[tuple[int, float]]], title: str = ""
) -> Figure:
    """One panel per series of (step, value) points; series sharing a prefix 'lr/' share a panel.
    Series named 'eval/<metric>' (one point per evaluation) come first: the curve a researcher
    looks at first."""
    panels: dict[str, dict[str, Sequence[tuple[int, float]]]] = {}
    ordered = sorted(history.items(), key=lambda item: not item[0].startswith("eval/"))
    for name, points in ordered:
        group = "learning rate" if name.startswith("lr") else name
        panels.setdefault(group, {})[name] = points
    if not panels:
        raise ValueError("no training history to draw (was any training step logged?)")
    fig = new_figure(*curves_size(len(panels)))
    cols = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / COLUMNS)
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, (group, series) in zip(axes, panels.items(), strict=False):
        for name, points in series.items():
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(
                    steps,
                    values,
                    linewidth=1.2,
                    marker="o" if len(points) < 30 or group.startswith("eval/") else None,
                    markersize=3,
                    label=name.removeprefix("lr/") if len(series) > 1 else None,
                )
        if group == "learning rate" and all(v > 0 for pts in series.values() for _, v in pts):
            ax.set_yscale("log")
        if len(series) > 1:
            ax.legend(fontsize=7)
        ax.set_title(
            f"{group} (per evaluation)" if group.startswith("eval/") else group, fontsize=9
        )
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    head = f"{title}: " if title else ""
    fig.suptitle(f"{head}training", fontsize=10)
    return fig
