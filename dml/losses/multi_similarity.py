"""Wang et al. 2019's multi-similarity loss on cosine similarity s = 1 - d^2 / 2."""

from __future__ import annotations

import torch
from torch import Tensor

from dml.distances import similarity_from_distance
from dml.losses.base import TupleLoss, active_fraction
from dml.samplers.tuples import Tuples, class_masks, to_pairs


def log1p_sum_exp(x: Tensor, mask: Tensor) -> Tensor:
    """Row-wise log(1 + sum over mask of exp(x)), stable; 0 for rows with an empty mask.

    Shifted by m = max(0, row max) as in log-sum-exp. Terms below e^-80 of the largest are
    dropped (clamped, then masked) so exp never enters float32's denormal range, which is very
    slow on CPUs; their share of the sum is below 1e-34.
    """
    outside = ~mask
    shift = x.masked_fill(outside, 0.0).amax(dim=1, keepdim=True).clamp_min(0.0).detach()
    # entries outside the mask may exceed the shift: exp of them must not overflow (inf * 0 = NaN)
    terms = torch.exp((x - shift).masked_fill(outside, -80.0).clamp_min(-80.0)) * mask
    one = torch.exp((-shift).clamp_min(-80.0))
    return (torch.log(terms.sum(dim=1, keepdim=True) + one) + shift).squeeze(1)


class MultiSimilarityLoss(TupleLoss):
    """Per anchor (1/alpha) log(1 + sum_P exp(-alpha (S - base))) + (1/beta) log(1 + sum_N exp(beta (S - base))).

    Mean over the batch. P and N are the anchor's pairs in `tuples` (every pair when None).
    `base` is the paper's lambda.
    """

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5) -> None:
        super().__init__()
        for name, value in (("alpha", alpha), ("beta", beta)):
            if value <= 0:
                raise ValueError(
                    f"loss.{name}={value} is not valid: expected a positive number (loss.alpha and loss.beta must be > 0)"
                )
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.base = float(base)

    def compute(
        self, distances: Tensor, labels: Tensor, tuples: Tuples | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if tuples is None:
            pos_mask, neg_mask = class_masks(labels)
        else:
            pa, p, na, n = to_pairs(tuples)
            pos_mask = torch.zeros_like(distances, dtype=torch.bool)
            neg_mask = torch.zeros_like(distances, dtype=torch.bool)
            pos_mask[pa, p] = True
            neg_mask[na, n] = True
        sim = similarity_from_distance(distances)
        pos_loss = log1p_sum_exp(-self.alpha * (sim - self.base), pos_mask) / self.alpha
        neg_loss = log1p_sum_exp(self.beta * (sim - self.base), neg_mask) / self.beta
        per_anchor = pos_loss + neg_loss
        active = (per_anchor > 0).sum()
        return per_anchor.mean(), {"active_fraction": active_fraction(active, per_anchor.numel())}
