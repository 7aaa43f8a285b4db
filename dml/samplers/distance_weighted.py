"""Wu et al. 2017's distance weighted sampling probabilities: negatives drawn with weight q(d)^-1.

For points uniform on the unit sphere in D dimensions, the density of pairwise distances is
q(d) ~ d^(D-2) (1 - d^2/4)^((D-3)/2); weighting negatives by its inverse spreads the sampled
distances evenly. As in the authors' code, d is clipped below at `cutoff`, weights at
d >= `nonzero_loss_cutoff` (where a margin loss is zero anyway) and of same-class items are 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def inverse_density_log_weights(distances: Tensor, dim: int, cutoff: float = 0.5) -> Tensor:
    """log q(d)^-1 = (2 - D) log d - ((D - 3) / 2) log(1 - d^2 / 4), d clipped below at cutoff."""
    d = distances.clamp_min(cutoff)
    # d can reach 2 (antipodal points): keep the log finite; such entries are masked by callers
    one_minus = (1.0 - 0.25 * d.square()).clamp_min(torch.finfo(d.dtype).tiny)
    return (2.0 - dim) * torch.log(d) - ((dim - 3.0) / 2.0) * torch.log(one_minus)


def distance_weighted_probabilities(
    distances: Tensor,
    negative_mask: Tensor,
    dim: int,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
) -> Tensor:
    """Row-stochastic [B, B] sampling probabilities of negatives for each anchor.

    Normalised in log space (row max subtracted before exp). A row with no valid weight falls
    back to uniform over its other-class items; a row with no other-class item is all zero.
    """
    log_w = inverse_density_log_weights(distances, dim, cutoff)
    valid = negative_mask & (distances.clamp_min(cutoff) < nonzero_loss_cutoff)
    log_w = log_w.masked_fill(~valid, float("-inf"))
    row_max = log_w.max(dim=1, keepdim=True).values
    has_valid = torch.isfinite(row_max)
    weights = torch.exp(log_w - torch.where(has_valid, row_max, torch.zeros_like(row_max)))
    uniform = negative_mask.to(weights.dtype)
    weights = torch.where(has_valid, weights, uniform)
    total = weights.sum(dim=1, keepdim=True)
    return weights / total.clamp_min(torch.finfo(weights.dtype).tiny)
