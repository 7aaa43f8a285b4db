"""Shared base of the tuple losses: input checks, the shared distance matrix, float32 compute, stats."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dml.distances import in_compute_dtype, pairwise_distance
from dml.samplers.tuples import Pairs, Tuples, check_batch, check_tuples


class TupleLoss(nn.Module):
    """loss(embeddings, labels, tuples=None, distances=None) -> scalar.

    tuples: Triplets or Pairs from a sampler (converted to what the loss needs); None means
    every valid tuple of the batch. distances: the batch's [B, B] distance matrix, with grad,
    when the caller already computed it (it is shared with the sampler). Computation runs in
    float32 for fp16/bf16 inputs. ``log_stats()`` gives detached numbers of the last call.
    """

    def __init__(self) -> None:
        super().__init__()
        self._stats: dict[str, Tensor] = {}

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        tuples: Tuples | None = None,
        distances: Tensor | None = None,
    ) -> Tensor:
        batch = check_batch(embeddings, labels, distances)
        if distances is None:
            distances = pairwise_distance(embeddings)
        if tuples is not None:
            check_tuples(tuples, batch)
        return self.from_distances(distances, labels, tuples)

    def from_distances(self, distances: Tensor, labels: Tensor, tuples: Tuples | None) -> Tensor:
        """The loss of a precomputed distance matrix [B, N] (with grad) of the batch's anchors
        to N references that start with the batch (e.g. batch + a cross-batch memory).

        What the training objective calls: it computes the matrix once for sampler and loss.
        tuples index anchors in rows and positives/negatives in columns (None: every valid
        tuple of a square [B, B] matrix). Keeps the numbers for ``log_stats()``.
        """
        distances = in_compute_dtype(distances)
        if labels.device != distances.device:
            labels = labels.to(distances.device)
        loss, stats = self.compute(distances, labels, tuples)
        self._stats = {k: v.detach() for k, v in stats.items()}
        return loss

    def compute(
        self, distances: Tensor, labels: Tensor, tuples: Tuples | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(scalar loss, stats) from distances [B, B] in float32 or float64."""
        raise NotImplementedError

    def log_histograms(self) -> dict[str, Tensor]:
        """Detached vectors worth a histogram (the margin loss's per-class beta); none by default."""
        return {}

    def log_stats(self) -> dict[str, Tensor]:
        """Detached numbers of the last forward (always 'active_fraction': share of non-zero terms)."""
        return dict(self._stats)


def pair_distances(distances: Tensor, pairs: Pairs) -> tuple[Tensor, Tensor]:
    """(d of the positive pairs, d of the negative pairs), gathered in one indexing op.

    One gather instead of two saves a [B, B] zero-fill and scatter in the backward pass.
    """
    pa, p, na, n = pairs
    d = distances[torch.cat([pa, na]), torch.cat([p, n])]
    d_pos, d_neg = d.split([pa.shape[0], na.shape[0]])
    return d_pos, d_neg


def mean_of_active(terms: Tensor) -> tuple[Tensor, Tensor]:
    """(mean of the non-zero terms, their count); 0 with a zero gradient when none is non-zero."""
    count = (terms > 0).sum()
    return terms.sum() / count.clamp_min(1), count


def active_fraction(active: Tensor, total: int) -> Tensor:
    """Share of active terms, 0 for an empty set."""
    return active / float(max(total, 1))
