"""Losses from other libraries: the adapter for pytorch-metric-learning's call convention."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dml.config import ConfigError
from dml.samplers.tuples import Tuples

# what pytorch-metric-learning raises for an input a loss class does not support -> dml's fix
_UNSUPPORTED = {
    "ref_emb is not supported": "it takes no reference embeddings, so no cross-batch memory; "
    "set xbm.memory_size=0",
    "indices_tuple is not supported": "it takes no tuples; drop the sampler with ~sampler",
}


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
        try:
            if references is None:
                return self.loss(embeddings, labels, indices)
            ref, ref_labels = references
            return self.loss(embeddings, labels, indices, ref, ref_labels)
        except ValueError as err:
            for message, fix in _UNSUPPORTED.items():
                if message in str(err):
                    raise ConfigError(f"loss {type(self.loss).__name__}: {fix}") from err
            raise
