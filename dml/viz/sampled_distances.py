"""What the tuple sampler picks: distances of the picked positives and negatives against every pair of
the batch, and (negatives) the density of distances between points uniform on the sphere, the
reference of Wu et al.'s distance weighted sampling."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

from dml.samplers.distance_weighted import inverse_density_log_weights
from dml.viz.figures import new_figure
from dml.viz.histograms import bin_edges, draw_histograms

SIZE = (10.0, 4.0)
KINDS = ("positive", "negative")
PICKED = {"positive": "#1a9850", "negative": "#d73027"}
BATCH = "#555555"


def sphere_density(edges: np.ndarray, dim: int) -> np.ndarray:
    """Density q(d) of the distance between two points uniform on the unit sphere in `dim` dimensions,
    at the bin centres, normalised over the bins (q is the inverse of distance weighted sampling's weight)."""
    centres = torch.as_tensor((edges[:-1] + edges[1:]) / 2, dtype=torch.float64)
    log_q = -inverse_density_log_weights(centres, dim, cutoff=0.0)
    q = torch.exp(log_q - log_q.max()).numpy()
    return q / (q.sum() * np.diff(edges)) if q.sum() > 0 else q


def sampled_distances_figure(
    picked: Mapping[str, np.ndarray],
    batch: Mapping[str, np.ndarray] | None = None,
    strategies: Mapping[str, str] | None = None,
    dim: int | None = None,
    title: str = "",
) -> Figure:
    """One panel per kind (positive, negative): picked tuples' distances (bars), every same-class /
    other-class pair of the batch (line), and for negatives the sphere density when `dim` is given."""
    batch = dict(batch or {})
    strategies = dict(strategies or {})
    bins = len(next(iter(picked.values())))
    edges = bin_edges(bins)
    fig = new_figure(*SIZE)
    axes = fig.subplots(1, 2, sharex=True)
    for ax, kind in zip(axes, KINDS, strict=True):
        strategy = strategies.get(kind)
        name = f"picked {kind}s" + (f" ({strategy})" if strategy else "")
        filled = {name: picked[kind]} if kind in picked else {}
        lines = {f"all {kind} pairs of the batch": batch[kind]} if kind in batch else {}
        colors = {name: PICKED[kind], **{k: BATCH for k in lines}}
        draw_histograms(ax, edges, filled, lines, colors)
        if kind == "negative" and dim is not None and dim > 3:
            ax.plot(
                (edges[:-1] + edges[1:]) / 2,
                sphere_density(edges, dim),
                ":",
                color="#3b6fb6",
                label=f"uniform on the sphere (D={dim})",
            )
            ax.legend(fontsize=8, loc="upper left")
        ax.set_title(f"{kind} distances", fontsize=9)
    head = f"{title}: " if title else ""
    fig.suptitle(f"{head}distances of the tuples the sampler picked", fontsize=10)
    return fig
