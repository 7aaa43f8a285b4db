"""The report's pictures: per claim its numbers (means with 95% intervals, curves or histograms) and
its paired differences against the verdict rule's thresholds. Off-screen, saved atomically (dml.viz.figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dml.reproduce.measures import Curve, Values
from dml.reproduce.stats import mean_ci
from dml.reproduce.verdicts import FAILS, HOLDS, Outcome
from dml.viz.figures import new_figure, save_png

_COLOURS = {HOLDS: "tab:green", FAILS: "tab:red"}


def _finite(ci: Any) -> bool:
    return bool(np.isfinite(ci.lo) and np.isfinite(ci.hi))


def means_figure(
    values: Values, measures: Sequence[str], methods: Sequence[str], path: Path, title: str
) -> Path:
    """One panel per measure: each method's mean over seeds (dot) with its 95% interval (bar) and the seeds (ticks)."""
    fig = new_figure(4.2 * len(measures) + 1.5, 0.45 * len(methods) + 1.4)
    axes = fig.subplots(1, len(measures), sharey=True, squeeze=False)[0]
    ys = np.arange(len(methods))[::-1]
    for ax, measure in zip(axes, measures, strict=True):
        for y, method in zip(ys, methods, strict=True):
            seeds = values.get(measure, {}).get(method, {})
            if not seeds:
                continue
            ci = mean_ci(seeds.values())
            ax.plot(list(seeds.values()), [y] * len(seeds), "|", color="0.6", ms=8)
            if _finite(ci):
                ax.plot([ci.lo, ci.hi], [y, y], "-", color="tab:blue", lw=2)
            ax.plot([ci.mean], [y], "o", color="tab:blue")
        ax.set_title(measure, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys, methods, fontsize=8)
    fig.suptitle(f"{title}: mean and 95% CI over seeds (grey: single seeds)", fontsize=10)
    return save_png(fig, path)


def differences_figure(outcomes: Sequence[Outcome], path: Path, title: str) -> Path:
    """Each comparison's mean paired difference with its 95% CI, beside 0 and the rule's margin."""
    fig = new_figure(10, 0.5 * len(outcomes) + 1.4)
    ax = fig.subplots()
    ys = np.arange(len(outcomes))[::-1]
    for y, o in zip(ys, outcomes, strict=True):
        c, ci = o.comparison, o.interval
        colour = _COLOURS.get(o.verdict, "0.4")
        if ci.n and _finite(ci):
            ax.plot([ci.lo, ci.hi], [y, y], "-", color=colour, lw=2)
        if ci.n:
            ax.plot([ci.mean], [y], "o", color=colour)
        edge = c.margin if c.kind == "better" else -c.margin
        ax.plot([edge, edge], [y - 0.35, y + 0.35], ":", color="k", lw=1)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(
        ys, [f"{o.comparison.label} ({o.comparison.measure})" for o in outcomes], fontsize=8
    )
    ax.set_xlabel(
        "paired difference d, 95% CI (> 0 favours the first method); dotted: the rule's margin"
    )
    ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{title}: green holds, red does not hold, grey inconclusive", fontsize=10)
    return save_png(fig, path)


def _band(ax: Any, x: np.ndarray, rows: np.ndarray, label: str) -> None:
    mean = rows.mean(axis=0)
    line = ax.plot(x, mean, label=label)[0]
    if len(rows) >= 2:
        cis = [mean_ci(rows[:, j]) for j in range(rows.shape[1])]
        ax.fill_between(
            x, [c.lo for c in cis], [c.hi for c in cis], color=line.get_color(), alpha=0.2
        )


def curves_figure(curves: Mapping[str, Mapping[int, Curve]], path: Path, title: str) -> Path:
    """Test MAP@R against evaluation rounds and against training seconds: mean over seeds with its 95% band."""
    fig = new_figure(11, 4)
    by_round, by_time = fig.subplots(1, 2)
    finite = [
        c for by_seed in curves.values() for c in by_seed.values() if not np.isnan(c.seconds).any()
    ]
    horizon = min((c.seconds[-1] for c in finite), default=0.0)
    grid = np.linspace(0.0, horizon, 50) if horizon > 0 else None
    for method, by_seed in curves.items():
        runs = list(by_seed.values())
        if not runs:
            continue
        n = min(len(c.rounds) for c in runs)
        _band(by_round, runs[0].rounds[:n], np.array([c.values[:n] for c in runs]), method)
        timed = [c for c in runs if not np.isnan(c.seconds).any()]
        if grid is not None and timed:
            _band(
                by_time,
                grid,
                np.array([np.interp(grid, c.seconds, c.values) for c in timed]),
                method,
            )
    by_round.set_xlabel("evaluation round (0: untrained)")
    by_time.set_xlabel("training wall time (s), up to the shortest run")
    for ax in (by_round, by_time):
        ax.set_ylabel("test MAP@R")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{title}: mean over seeds, 95% band", fontsize=10)
    return save_png(fig, path)


def negatives_figure(
    analyses: Sequence[Mapping[str, Any]], strategies: Sequence[str], path: Path, title: str
) -> Path:
    """Per strategy, the pooled histogram of the picked negatives' distances over that of every negative pair."""
    fig = new_figure(7.5, 1.7 * len(strategies) + 0.8)
    axes = fig.subplots(len(strategies), 1, sharex=True, squeeze=False)[:, 0]
    bins = np.asarray(analyses[0]["bins"]) if analyses else np.linspace(0, 2, 81)
    centres, width = (bins[1:] + bins[:-1]) / 2, np.diff(bins)
    background = sum(
        (np.asarray(a["all_negatives"]["counts"], dtype=float) for a in analyses),
        np.zeros(len(centres)),
    )
    for ax, strategy in zip(axes, strategies, strict=True):
        counts = sum(
            (
                np.asarray(a["strategies"][strategy]["counts"], dtype=float)
                for a in analyses
                if strategy in a["strategies"]
            ),
            np.zeros(len(centres)),
        )
        if background.sum():
            ax.bar(
                centres,
                background / background.sum() / width,
                width=width,
                color="0.85",
                label="every negative pair",
            )
        if counts.sum():
            ax.step(
                centres,
                counts / counts.sum() / width,
                where="mid",
                lw=2,
                label=f"{strategy} (picked)",
            )
        widths = [
            a["strategies"][strategy]["width"] for a in analyses if strategy in a["strategies"]
        ]
        if widths:
            ax.text(
                0.99,
                0.9,
                f"central 90% width {np.mean(widths):.3f} (mean of {len(widths)} models)",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8,
            )
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.set_ylabel("density")
    axes[-1].set_xlabel("anchor-negative distance")
    fig.suptitle(f"{title}: negatives picked on the trained models' batches", fontsize=10)
    return save_png(fig, path)
