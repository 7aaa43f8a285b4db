"""Triplet margin loss (d_ap - d_an + margin)_+, mean over the non-zero triplets."""

from __future__ import annotations

import torch
from torch import Tensor

from dml.losses.base import TupleLoss, active_fraction, mean_of_active, pair_distances
from dml.samplers.tuples import Tuples, all_triplets, to_pairs, to_triplets


class TripletLoss(TupleLoss):
    """(d_ap - d_an + margin)_+ averaged over triplets with a non-zero term; 0 when none."""

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"loss.margin={margin} is not valid: expected a non-negative number")
        self.margin = float(margin)

    def compute(
        self, distances: Tensor, labels: Tensor, tuples: Tuples | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        triplets = all_triplets(labels) if tuples is None else to_triplets(tuples)
        d_ap, d_an = pair_distances(distances, to_pairs(triplets))
        terms = torch.relu(d_ap - d_an + self.margin)
        loss, count = mean_of_active(terms)
        return loss, {"active_fraction": active_fraction(count, terms.numel())}
