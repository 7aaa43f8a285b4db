"""Positive and negative selection strategies, vectorised over the batch (no loop over anchors).

positive: all | easy | hard | random  -> positive pairs (a, p)
negative: random | hard | semihard | distance_weighted -> Triplets (a, p, n); all -> Pairs
"""

from __future__ import annotations

import torch
from torch import Tensor

from dml.distances import in_compute_dtype
from dml.samplers.distance_weighted import distance_weighted_weights
from dml.samplers.tuples import Pairs, Triplets

POSITIVE_STRATEGIES = ("all", "easy", "hard", "random")
NEGATIVE_STRATEGIES = ("random", "hard", "semihard", "distance_weighted", "all")


def draw(weights: Tensor, rows: Tensor, generator: torch.Generator) -> Tensor:
    """One index drawn from each row `weights[rows]`, with probability proportional to the weight.

    weights [B, B] non-negative (need not sum to 1), each row in `rows` with an entry >= 1 (a
    row normalised to max 1, or a mask). Inverse-CDF sampling: one uniform number per draw and a
    binary search in the row's cumulative sum, much cheaper than torch.multinomial (which draws
    an exponential number per item). u lies in (0, total], and the first index whose cumulative
    sum reaches u is one where the sum grew, so a weight-0 item is never returned.
    """
    if rows.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=weights.device)
    cdf = in_compute_dtype(weights).cumsum(dim=1)[rows]
    r = torch.rand(rows.shape[0], 1, generator=generator, device=cdf.device, dtype=cdf.dtype)
    return torch.searchsorted(cdf, (1.0 - r) * cdf[:, -1:]).squeeze(1)


def select_positives(
    strategy: str, distances: Tensor, positive_mask: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Positive pairs (a, p) by strategy; anchors whose row of positive_mask is empty get none."""
    if strategy == "all":
        a, p = positive_mask.nonzero(as_tuple=True)
        return a, p
    anchors = positive_mask.any(dim=1).nonzero(as_tuple=True)[0]
    if strategy == "easy":  # Levi et al.: the nearest same-class item
        p = distances.masked_fill(~positive_mask, float("inf")).argmin(dim=1)[anchors]
    elif strategy == "hard":  # the farthest same-class item
        p = distances.masked_fill(~positive_mask, float("-inf")).argmax(dim=1)[anchors]
    elif strategy == "random":
        p = draw(positive_mask, anchors, generator)
    else:
        raise ValueError(
            f"unknown positive strategy {strategy!r}; choose one of {POSITIVE_STRATEGIES}"
        )
    return anchors, p


def select_negatives(
    strategy: str,
    distances: Tensor,
    negative_mask: Tensor,
    a: Tensor,
    p: Tensor,
    generator: torch.Generator,
    *,
    dim: int,
    margin: float = 0.2,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
) -> Triplets | Pairs:
    """Negatives for each positive pair (a, p); every anchor in `a` must have an other-class item.

    `all` returns Pairs: the positive pairs and every negative pair of their anchors. That is
    every triplet without writing each out (a triplet loss forms them all from shared anchors),
    and a pair loss sees each pair once, exactly as with no sampler.
    """
    if strategy == "all":
        is_anchor = torch.zeros(negative_mask.shape[0], dtype=torch.bool, device=a.device)
        is_anchor[a] = True
        na, n = (negative_mask & is_anchor.unsqueeze(1)).nonzero(as_tuple=True)
        return Pairs(a, p, na, n)
    if strategy == "random":
        n = draw(negative_mask, a, generator)
    elif strategy == "hard":  # nearest other-class item of the anchor
        n = hardest_negative(distances, negative_mask)[a]
    elif strategy == "semihard":
        # FaceNet: d_ap < d_an < d_ap + margin; the hardest such negative, else the hardest one
        d_an = distances[a]
        d_ap = d_an.gather(1, p.unsqueeze(1))
        band = negative_mask[a] & (d_an > d_ap) & (d_an < d_ap + margin)
        n = d_an.masked_fill(~band, float("inf")).argmin(dim=1)
        n = torch.where(band.any(dim=1), n, hardest_negative(distances, negative_mask)[a])
    elif strategy == "distance_weighted":  # Wu et al.: one draw per positive, with replacement
        weights = distance_weighted_weights(
            distances, negative_mask, dim, cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff
        )
        n = draw(weights, a, generator)
    else:
        raise ValueError(
            f"unknown negative strategy {strategy!r}; choose one of {NEGATIVE_STRATEGIES}"
        )
    return Triplets(a, p, n)


def swap_negatives(
    tuples: Triplets | Pairs, positive_mask: Tensor, rho: float, generator: torch.Generator
) -> Triplets | Pairs:
    """rho-regularisation (Roth et al. 2020): each negative becomes, with probability `rho`, a
    random same-class item of its anchor, so the loss also pushes some positives apart.

    The training classes then keep some spread instead of collapsing to points, which helps
    retrieval on unseen classes. An anchor without a positive keeps its negative.
    """
    anchors = tuples.anchor if isinstance(tuples, Triplets) else tuples.neg_anchor
    if rho <= 0 or anchors.numel() == 0:
        return tuples
    u = torch.rand(anchors.shape[0], generator=generator, device=anchors.device)
    swap = (u < rho) & positive_mask[anchors].any(dim=1)
    negative = tuples.negative.clone()
    negative[swap] = draw(positive_mask, anchors[swap], generator)
    return tuples._replace(negative=negative)


def hardest_negative(distances: Tensor, negative_mask: Tensor) -> Tensor:
    """Index of each anchor's nearest other-class item (arbitrary for rows without one)."""
    return distances.masked_fill(~negative_mask, float("inf")).argmin(dim=1)
