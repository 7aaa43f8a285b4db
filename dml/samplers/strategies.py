"""Positive and negative selection strategies, vectorised over the batch (no loop over anchors).

positive: all | easy | hard | random  -> positive pairs (a, p)
negative: random | hard | semihard | distance_weighted | all  -> Triplets (a, p, n)
"""

from __future__ import annotations

import torch
from torch import Tensor

from dml.samplers.distance_weighted import distance_weighted_probabilities
from dml.samplers.tuples import Triplets

POSITIVE_STRATEGIES = ("all", "easy", "hard", "random")
NEGATIVE_STRATEGIES = ("random", "hard", "semihard", "distance_weighted", "all")


def _draw(weights: Tensor, generator: torch.Generator) -> Tensor:
    """One index per row of non-negative weights [R, B] (each row has a positive entry)."""
    if weights.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=weights.device)
    return torch.multinomial(weights, 1, replacement=True, generator=generator).squeeze(1)


def select_positives(
    strategy: str, distances: Tensor, positive_mask: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Positive pairs (a, p) by strategy; anchors without a same-class item get none."""
    if strategy == "all":
        a, p = positive_mask.nonzero(as_tuple=True)
        return a, p
    anchors = positive_mask.any(dim=1).nonzero(as_tuple=True)[0]
    mask = positive_mask[anchors]
    d = distances[anchors]
    if strategy == "easy":  # Levi et al.: the nearest same-class item
        p = d.masked_fill(~mask, float("inf")).argmin(dim=1)
    elif strategy == "hard":  # the farthest same-class item
        p = d.masked_fill(~mask, float("-inf")).argmax(dim=1)
    elif strategy == "random":
        p = _draw(mask.to(distances.dtype), generator)
    else:
        raise ValueError(
            f"unknown positive strategy {strategy!r}; choose one of {POSITIVE_STRATEGIES}"
        )
    return anchors, p


def select_negatives(
    strategy: str,
    distances: Tensor,
    negative_mask: Tensor,
    anchor: Tensor,
    positive: Tensor,
    generator: torch.Generator,
    *,
    dim: int,
    margin: float = 0.2,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
) -> Triplets:
    """Negatives for each positive pair (a, p); pairs whose anchor has no other-class item are dropped."""
    keep = negative_mask.any(dim=1)[anchor]
    a, p = anchor[keep], positive[keep]
    if strategy == "all":
        rows, n = negative_mask[a].nonzero(as_tuple=True)
        return Triplets(a[rows], p[rows], n)
    if strategy == "random":
        n = _draw(negative_mask[a].to(distances.dtype), generator)
    elif strategy == "hard":  # nearest other-class item of the anchor
        n = hardest_negative(distances, negative_mask)[a]
    elif strategy == "semihard":
        # FaceNet: d_ap < d_an < d_ap + margin; the hardest such negative, else the hardest one
        d_an = distances[a]
        d_ap = distances[a, p].unsqueeze(1)
        band = negative_mask[a] & (d_an > d_ap) & (d_an < d_ap + margin)
        n = d_an.masked_fill(~band, float("inf")).argmin(dim=1)
        n = torch.where(band.any(dim=1), n, hardest_negative(distances, negative_mask)[a])
    elif strategy == "distance_weighted":  # Wu et al.: one draw per positive, with replacement
        probs = distance_weighted_probabilities(
            distances, negative_mask, dim, cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff
        )
        n = _draw(probs[a], generator)
    else:
        raise ValueError(
            f"unknown negative strategy {strategy!r}; choose one of {NEGATIVE_STRATEGIES}"
        )
    return Triplets(a, p, n)


def hardest_negative(distances: Tensor, negative_mask: Tensor) -> Tensor:
    """Index of each anchor's nearest other-class item (arbitrary for rows without one)."""
    return distances.masked_fill(~negative_mask, float("inf")).argmin(dim=1)
