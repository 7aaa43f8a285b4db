"""Wu et al. 2017's distance weighted sampling probabilities: negatives drawn with weight q(d)^-1.

For points uniform on the unit sphere in D dimensions, the density of pairwise distances is
q(d) ~ d^(D-2) (1 - d^2/4)^((D-3)/2); weighting negatives by its inverse spreads the sampled
distances evenly. As in the authors' code, d is clipped below at `cutoff`, weights at
d >= `nonzero_loss_cutoff` (where a margin loss is zero anyway) and of same-class items are 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_LOG_WEIGHT = -80.0
MAX_DISTANCE = 2.0 - 1e-6


def inverse_density_log_weights(distances: Tensor, dim: int, cutoff: float = 0.5) -> Tensor:
    """log q(d)^-1 = (2 - D) log d - ((D - 3) / 2) log(1 - d^2 / 4), d clipped below at cutoff.

    The formula diverges at d = 0: a sampler's cutoff is positive (cutoff 0 only for d > 0, as in
    plots). d is also clipped just below 2 (antipodal points) so that the result stays finite.
    """
    d = distances.clamp(cutoff, MAX_DISTANCE)
    log_one_minus = torch.log1p_(d.square().mul_(-0.25))
    return torch.log(d).mul_(2.0 - dim).add_(log_one_minus, alpha=-(dim - 3.0) / 2.0)


def distance_weighted_weights(
    distances: Tensor,
    negative_mask: Tensor,
    dim: int,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
) -> Tensor:
    """Unnormalised [B, N] sampling weights of negatives for each anchor, row max 1.

    q(d)^-1 computed in log space with the row max subtracted before exp (no overflow for any
    embedding dimension). Weights of same-class items and at d >= nonzero_loss_cutoff are 0. A
    row with no valid weight falls back to uniform (1) over its other-class items; a row with no
    other-class item is all zero.
    """
    log_w = inverse_density_log_weights(distances, dim, cutoff)
    invalid = (distances >= nonzero_loss_cutoff).logical_or_(~negative_mask)
    row_max = log_w.masked_fill(invalid, float("-inf")).amax(dim=1, keepdim=True)
    # weights below e^-80 of the row's largest are 0 for sampling; clamping there keeps exp out
    # of float32's denormal range (very slow on CPUs) and away from inf - inf for empty rows
    weights = torch.exp_((log_w - row_max).clamp_(MIN_LOG_WEIGHT, 0.0)).masked_fill_(invalid, 0.0)
    # a row without any valid weight (all 0 now) falls back to uniform over its other-class items
    return weights.masked_fill_(negative_mask & (row_max == float("-inf")), 1.0)


def distance_weighted_probabilities(
    distances: Tensor,
    negative_mask: Tensor,
    dim: int,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
) -> Tensor:
    """Row-stochastic [B, B] probabilities with which distance weighted sampling draws negatives."""
    weights = distance_weighted_weights(distances, negative_mask, dim, cutoff, nonzero_loss_cutoff)
    total = weights.sum(dim=1, keepdim=True)
    return weights / total.clamp_min(torch.finfo(weights.dtype).tiny)
