"""Histograms of distances on [0, 2] (L2-normalised embeddings): fixed bins, so counts add up over
batches and epochs without keeping the distances, and one way to draw them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.axes import Axes
from torch import Tensor

D_MAX = 2.0
BINS = 50


def bin_edges(bins: int = BINS) -> np.ndarray:
    """The `bins + 1` edges of equal bins on [0, 2]."""
    return np.linspace(0.0, D_MAX, bins + 1)


def bin_index(distances: Tensor, bins: int = BINS) -> Tensor:
    """Flat bin index of each distance in equal bins on [0, 2] (values outside go to the end bins)."""
    return (distances.detach().flatten().float() * (bins / D_MAX)).long().clamp_(0, bins - 1)


def distance_counts(
    distances: Tensor, bins: int = BINS, mask: Tensor | None = None, index: Tensor | None = None
) -> Tensor:
    """Counts [bins] (float) of `distances` (any shape; only where `mask` is True) in equal bins on
    [0, 2]. `index`: their `bin_index`, when several masks share one matrix. Runs on the tensors'
    device without a host sync (no boolean indexing), so it can run every training step."""
    idx = bin_index(distances, bins) if index is None else index
    weights = (
        torch.ones(idx.shape, device=idx.device)
        if mask is None
        else mask.detach().flatten().float()
    )
    return torch.zeros(bins, device=idx.device).scatter_add_(0, idx, weights)


class DistanceHistograms:
    """Named running histograms (e.g. 'picked negative'): `add(name, distances, mask=None)`, `counts()`, `reset()`."""

    def __init__(self, bins: int = BINS) -> None:
        self.bins = int(bins)
        self._counts: dict[str, Tensor] = {}

    def add(self, name: str, distances: Tensor, mask: Tensor | None = None) -> Tensor:
        """Add the counts of `distances` (where `mask`) to histogram `name`; returns those counts."""
        counts = distance_counts(distances, self.bins, mask)
        self.add_counts(name, counts)
        return counts

    def add_counts(self, name: str, counts: Tensor) -> None:
        prev = self._counts.get(name)
        self._counts[name] = counts if prev is None else prev + counts.to(prev.device)

    def counts(self) -> dict[str, np.ndarray]:
        """The accumulated counts as NumPy arrays (one device sync per histogram)."""
        return {k: v.cpu().round().numpy().astype(np.int64) for k, v in self._counts.items()}

    def reset(self) -> None:
        self._counts = {}

    def __bool__(self) -> bool:
        return bool(self._counts)


def density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts scaled to a probability density over the bins (zeros stay zeros for an empty histogram)."""
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total > 0 else np.zeros(len(counts))


def draw_histograms(
    ax: Axes,
    edges: np.ndarray,
    filled: Mapping[str, np.ndarray],
    lines: Mapping[str, np.ndarray] | None = None,
    colors: Mapping[str, str] | None = None,
) -> None:
    """Densities on `ax`: `filled` as translucent bars, `lines` (e.g. every pair of the batch) as steps.

    Legend entries carry each histogram's count, so an empty or tiny sample is visible as such.
    """
    colors = dict(colors or {})
    width = np.diff(edges)
    for name, counts in filled.items():
        ax.bar(
            edges[:-1],
            density(counts, edges),
            width=width,
            align="edge",
            alpha=0.45,
            color=colors.get(name),
            label=f"{name} (n={int(counts.sum()):,})",
        )
    for name, counts in (lines or {}).items():
        ax.stairs(
            density(counts, edges),
            edges,
            linewidth=1.5,
            color=colors.get(name),
            label=f"{name} (n={int(counts.sum()):,})",
        )
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("distance d (L2-normalised embeddings)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper left")
