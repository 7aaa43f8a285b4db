"""Triplets and Pairs of batch indices, every valid tuple of a batch, and conversion both ways.

This is the one place where tuples are converted, so that every loss runs with every sampler:
a pair loss given Triplets uses (a, p) and (a, n); a triplet loss given Pairs forms every
(a, p, n) whose positive pair and negative pair share the anchor.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Triplets(NamedTuple):
    """(anchor, positive, negative): three equal-length LongTensors of batch indices."""

    anchor: Tensor
    positive: Tensor
    negative: Tensor


class Pairs(NamedTuple):
    """(pos_anchor, positive, neg_anchor, negative): positive pairs and negative pairs of indices."""

    pos_anchor: Tensor
    positive: Tensor
    neg_anchor: Tensor
    negative: Tensor


Tuples = Triplets | Pairs


def check_batch(embeddings: Tensor, labels: Tensor, distances: Tensor | None = None) -> int:
    """Batch size B after checking embeddings [B, D], labels [B] and distances [B, B] (if given)."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be [B, D], got shape {tuple(embeddings.shape)}")
    batch = embeddings.shape[0]
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(
            f"labels must be a 1-D tensor of length {batch} (one per embedding), "
            f"got shape {tuple(labels.shape)}"
        )
    if distances is not None and distances.shape != (batch, batch):
        raise ValueError(
            f"distances must be the [{batch}, {batch}] matrix of the batch, "
            f"got shape {tuple(distances.shape)}"
        )
    return batch


def class_masks(labels: Tensor, ref_labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Boolean masks of anchors [B] against references [N] (default: the batch itself).

    positive: same class, not the item itself; negative: other class. When references are given
    they start with the batch (e.g. batch + a cross-batch memory), so column i of row i is the
    anchor itself and is never its own positive.
    """
    ref = labels if ref_labels is None else ref_labels
    same = labels.view(-1, 1) == ref.view(1, -1)
    negative = ~same
    positive = same.fill_diagonal_(False)
    return positive, negative


def all_pairs(labels: Tensor) -> Pairs:
    """Every positive pair (a, p), p != a, and every negative pair (a, n) of the batch."""
    positive, negative = class_masks(labels)
    pa, p = positive.nonzero(as_tuple=True)
    na, n = negative.nonzero(as_tuple=True)
    return Pairs(pa, p, na, n)


def all_triplets(labels: Tensor) -> Triplets:
    """Every valid triplet (a, p, n) of the batch: p same class as a (p != a), n another class."""
    return to_triplets(all_pairs(labels))


def _empty(device: torch.device) -> Tensor:
    return torch.empty(0, dtype=torch.long, device=device)


def to_pairs(tuples: Tuples) -> Pairs:
    """Pairs from Triplets ((a, p) and (a, n) of each triplet, duplicates kept); Pairs unchanged."""
    if isinstance(tuples, Pairs):
        return tuples
    if isinstance(tuples, Triplets) or (isinstance(tuples, tuple) and len(tuples) == 3):
        a, p, n = tuples
        return Pairs(a, p, a, n)
    if isinstance(tuples, tuple) and len(tuples) == 4:
        return Pairs(*tuples)
    raise TypeError(
        f"expected Triplets or Pairs (3 or 4 index tensors), got {type(tuples).__name__}"
    )


def to_triplets(tuples: Tuples) -> Triplets:
    """Triplets from Pairs (every positive pair x every negative pair of the same anchor); Triplets unchanged.

    Vectorised: pairs are grouped by anchor with a sort, and each positive pair is repeated once
    per negative pair of its anchor.
    """
    if isinstance(tuples, Triplets):
        return tuples
    if isinstance(tuples, tuple) and len(tuples) == 3:
        return Triplets(*tuples)
    pa, p, na, n = to_pairs(tuples)
    device = pa.device
    if pa.numel() == 0 or na.numel() == 0:
        return Triplets(_empty(device), _empty(device), _empty(device))
    size = int(torch.maximum(pa.max(), na.max())) + 1
    order = torch.argsort(na, stable=True)
    na, n = na[order], n[order]
    neg_count = torch.bincount(na, minlength=size)
    neg_start = torch.cumsum(neg_count, 0) - neg_count
    per_pos = neg_count[pa]  # negatives available to each positive pair
    pos_rep = torch.repeat_interleave(torch.arange(pa.numel(), device=device), per_pos)
    block_start = torch.cumsum(per_pos, 0) - per_pos
    offset = torch.arange(pos_rep.numel(), device=device) - block_start[pos_rep]
    neg_idx = neg_start[pa[pos_rep]] + offset
    return Triplets(pa[pos_rep], p[pos_rep], n[neg_idx])


def check_tuples(tuples: Tuples, batch_size: int) -> None:
    """Raise a clear error if tuples hold tensors of unequal length or indices outside the batch.

    Index ranges are checked for plain tuples (a pytorch-metric-learning miner's output, a
    user's own) on the CPU; Triplets and Pairs come from dml's samplers and are trusted (an
    index past the batch still raises torch's IndexError). On a GPU the check would cost a
    synchronisation per step.
    """
    names = tuples._fields if hasattr(tuples, "_fields") else [str(i) for i in range(len(tuples))]
    lengths = [t.numel() for t in tuples]
    if isinstance(tuples, Pairs) or len(tuples) == 4:
        if lengths[0] != lengths[1] or lengths[2] != lengths[3]:
            raise ValueError(f"Pairs with unequal lengths {dict(zip(names, lengths, strict=True))}")
    elif len(set(lengths)) > 1:
        raise ValueError(f"Triplets with unequal lengths {dict(zip(names, lengths, strict=True))}")
    if isinstance(tuples, Triplets | Pairs) or tuples[0].device.type != "cpu" or sum(lengths) == 0:
        return
    low, high = torch.aminmax(torch.cat([t.reshape(-1) for t in tuples]))
    if int(low) < 0 or int(high) >= batch_size:
        raise ValueError(
            f"tuples hold indices outside the batch of {batch_size} (min {int(low)}, max {int(high)})"
        )
