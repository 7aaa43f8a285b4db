"""Cross-batch memory (XBM, Wang et al. 2020): past embeddings as extra positives and negatives.

A FIFO queue keeps the last `size` embeddings (detached, float32) and labels of the global
batches trained on. At each step the anchors are the current batch, and the candidates
(positives and negatives) are the batch followed by the memory: the training objective
(dml.training.objective) computes one [B, B + K] distance matrix, shared by sampler (detached)
and loss (with gradients through the batch rows and columns only; memory rows carry no
gradient). The sampler's strategy runs row by row over those candidates, so `hard` negatives are the hardest in batch + memory, `distance_weighted`
draws from both, and so on. An item is never its own positive (column i of row i is masked);
the memory holds earlier steps only (the batch is enqueued after its loss), though it can hold
an older embedding of the same image, which counts as a positive like any same-class item.
Under DDP every rank enqueues the same gathered global batch, so memories agree across ranks.

With an empty memory (the first step, or `start` steps of warm-up) the loss equals the plain
loss of the batch.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from dml.samplers.tuples import Pairs, Tuples, class_masks


class CrossBatchMemory(nn.Module):
    """Ring buffer of the last `size` embeddings [size, D] and labels, filled after `start` steps.

    The tensors are plain attributes, not buffers, so DDP does not re-broadcast them every step
    (they are identical on every rank); they travel in checkpoints as the module's extra state.
    """

    def __init__(self, size: int, start: int = 0) -> None:
        super().__init__()
        if int(size) < 1:
            raise ValueError(
                f"xbm.memory_size={size} must be >= 1 to build a memory (0 turns XBM off)"
            )
        if int(start) < 0:
            raise ValueError(
                f"xbm.memory_start={start} must be >= 0 (steps before the memory fills)"
            )
        self.size = int(size)
        self.start = int(start)
        self.steps = 0  # enqueue calls so far
        self.count = 0  # rows filled
        self.ptr = 0  # next row to write
        self.embeddings: Tensor | None = None
        self.labels: Tensor | None = None

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def enqueue(self, embeddings: Tensor, labels: Tensor) -> None:
        """Push a batch (oldest rows are overwritten); skipped during the first `start` steps."""
        self.steps += 1
        if self.steps <= self.start:
            return
        embeddings = embeddings.detach().float()[-self.size :]
        labels = labels.detach()[-self.size :]
        if self.embeddings is None or self.embeddings.shape[1] != embeddings.shape[1]:
            self.embeddings = embeddings.new_zeros(self.size, embeddings.shape[1])
            self.labels = labels.new_zeros(self.size)
            self.count = self.ptr = 0
        self.embeddings = self.embeddings.to(embeddings.device)
        self.labels = self.labels.to(labels.device)
        rows = (self.ptr + torch.arange(embeddings.shape[0], device=embeddings.device)) % self.size
        self.embeddings[rows] = embeddings
        self.labels[rows] = labels.to(self.labels.dtype)
        self.ptr = (self.ptr + embeddings.shape[0]) % self.size
        self.count = min(self.size, self.count + embeddings.shape[0])

    def contents(self) -> tuple[Tensor, Tensor] | None:
        """(embeddings [K, D], labels [K]) of the filled rows in buffer order; None when empty."""
        if self.count == 0 or self.embeddings is None or self.labels is None:
            return None
        return self.embeddings[: self.count], self.labels[: self.count]

    def get_extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"steps": self.steps, "count": self.count, "ptr": self.ptr}
        if self.embeddings is not None:
            state["embeddings"], state["labels"] = self.embeddings.cpu(), self.labels.cpu()
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.steps, self.count, self.ptr = (
            int(state["steps"]),
            int(state["count"]),
            int(state["ptr"]),
        )
        self.embeddings, self.labels = state.get("embeddings"), state.get("labels")

    def extra_repr(self) -> str:
        return f"size={self.size}, start={self.start}, filled={self.count}"


def sample_candidates(
    sampler: Any, distances: Tensor, labels: Tensor, ref_labels: Tensor, dim: int
) -> Tuples:
    """Tuples whose anchors index the batch (rows) and positives/negatives the candidates (columns).

    distances [B, N], detached; ref_labels [N] start with the batch's labels. The sampler's
    `sample(..., ref_labels=...)` runs its strategy row by row over the candidates; without a
    sampler every valid (anchor, candidate) pair is used, as a loss without a sampler would.
    """
    if sampler is None:
        positive, negative = class_masks(labels, ref_labels)
        pa, p = positive.nonzero(as_tuple=True)
        na, n = negative.nonzero(as_tuple=True)
        return Pairs(pa, p, na, n)
    sample = getattr(sampler, "sample", None)
    if sample is None or "ref_labels" not in inspect.signature(sample).parameters:
        raise TypeError(
            f"xbm.memory_size>0 (XBM) needs a sampler whose `sample(distances, labels, dim, ref_labels)` "
            f"takes the memory's labels (dml's samplers do), not {type(sampler).__name__}; "
            "or set xbm.memory_size=0"
        )
    return sample(distances, labels, dim, ref_labels=ref_labels)
