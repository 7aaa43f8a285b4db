"""Losses from other libraries: the adapter for pytorch-metric-learning's call convention."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dml.samplers.tuples import Tuples


class ForeignLoss:
    """Calls a loss as pytorch-metric-learning does: `loss(embeddings, labels, indices_tuple,
    ref_emb, ref_labels)`.

    tuples (Triplets or Pairs from a dml sampler, a miner's tuple, or None for every valid
    tuple) index the anchors in `embeddings` and the positives/negatives in the references.
    references: (ref_emb, ref_labels) when they are more than the batch (a cross-batch memory);
    None leaves the loss to compare the batch with itself (its own item left out).
    """

    def __init__(self, loss: Any) -> None:
        if not callable(loss):
            raise TypeError(f"loss {loss!r} is not callable; name a loss class in loss._target_")
        self.loss = loss

    def __call__(
        self,
        embeddings: Tensor,
        labels: Tensor,
        tuples: Tuples | tuple[Tensor, ...] | None,
        references: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        indices = None if tuples is None else tuple(tuples)
        if references is None:
            return self.loss(embeddings, labels, indices)
        ref, ref_labels = references
        return self.loss(embeddings, labels, indices, ref, ref_labels)
