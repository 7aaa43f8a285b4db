"""Histograms of positive (same-class) and negative pair distances of eval embeddings: how far apart
the classes are, and how much the two distributions overlap."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from dml.distances import pairwise_distance
from dml.viz.figures import new_figure
from dml.viz.histograms import BINS, bin_edges, distance_counts, draw_histograms

SIZE = (7.0, 4.0)
COLORS = {"positive pairs": "#1a9850", "negative pairs": "#d73027"}


def _subsample(n: int, max_points: int, rng: np.random.Generator) -> torch.Tensor:
    return torch.as_tensor(np.sort(rng.choice(n, size=min(n, max_points), replace=False)))


def pair_distance_counts(
    embeddings: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    gallery: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | np.ndarray | None = None,
    max_points: int = 2000,
    bins: int = BINS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Counts of positive and negative pair distances in `bins` bins on [0, 2].

    Self mode (gallery None): every pair i < j of a seeded subsample of `max_points` items;
    with a gallery: every (query, gallery) pair of subsamples of `max_points` each.
    """
    rng = np.random.default_rng(seed)
    e = torch.as_tensor(embeddings).float()
    lab = torch.as_tensor(np.asarray(labels))
    qi = _subsample(len(e), max_points, rng)
    q, ql = e[qi], lab[qi]
    if gallery is None:
        d = pairwise_distance(q)
        same = ql[:, None] == ql[None, :]
        pair = torch.ones_like(same).triu_(1)
    else:
        g = torch.as_tensor(gallery).float()
        gi = _subsample(len(g), max_points, rng)
        gl = torch.as_tensor(np.asarray(gallery_labels))[gi]
        d = pairwise_distance(q, g[gi])
        same = ql[:, None] == gl[None, :]
        pair = torch.ones_like(same)
    return {
        "positive pairs": distance_counts(d, bins, same & pair).numpy().round().astype(np.int64),
        "negative pairs": distance_counts(d, bins, ~same & pair).numpy().round().astype(np.int64),
    }


def pair_distance_figure(counts: dict[str, np.ndarray], title: str = "") -> Figure:
    """Densities of positive and negative pair distances (from `pair_distance_counts`)."""
    bins = len(next(iter(counts.values())))
    fig = new_figure(*SIZE)
    ax = fig.add_subplot()
    draw_histograms(ax, bin_edges(bins), counts, colors=COLORS)
    head = f"{title}: " if title else ""
    fig.suptitle(f"{head}pair distances of the eval embeddings", fontsize=10)
    return fig
