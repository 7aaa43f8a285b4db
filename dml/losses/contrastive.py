"""Contrastive loss: positives (d - pos_margin)_+, negatives (neg_margin - d)_+."""

from __future__ import annotations

import torch
from torch import Tensor

from dml.losses.base import TupleLoss, active_fraction, mean_of_active, pair_distances
from dml.samplers.tuples import Tuples, all_pairs, to_pairs


class ContrastiveLoss(TupleLoss):
    """Mean of the non-zero positive terms plus mean of the non-zero negative terms."""

    def __init__(self, pos_margin: float = 0.0, neg_margin: float = 1.0) -> None:
        super().__init__()
        for name, value in (("pos_margin", pos_margin), ("neg_margin", neg_margin)):
            if value < 0:
                raise ValueError(
                    f"loss.{name}={value} is not valid: expected a non-negative number"
                )
        if not 0 <= pos_margin < neg_margin:
            raise ValueError(
                f"need 0 <= loss.pos_margin < loss.neg_margin, got {pos_margin} and {neg_margin}"
            )
        self.pos_margin = float(pos_margin)
        self.neg_margin = float(neg_margin)

    def compute(
        self, distances: Tensor, labels: Tensor, tuples: Tuples | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        pairs = all_pairs(labels) if tuples is None else to_pairs(tuples)
        d_pos, d_neg = pair_distances(distances, pairs)
        pos_loss, pos_count = mean_of_active(torch.relu(d_pos - self.pos_margin))
        neg_loss, neg_count = mean_of_active(torch.relu(self.neg_margin - d_neg))
        total = d_pos.numel() + d_neg.numel()
        stats = {"active_fraction": active_fraction(pos_count + neg_count, total)}
        return pos_loss + neg_loss, stats
