"""TupleSampler: which (anchor, positive, negative) triplets of a batch are trained on."""

from __future__ import annotations

from torch import Tensor

from dml.samplers.base import BaseSampler
from dml.samplers.strategies import (
    NEGATIVE_STRATEGIES,
    POSITIVE_STRATEGIES,
    select_negatives,
    select_positives,
    swap_negatives,
)
from dml.samplers.tuples import Pairs, Triplets, class_masks


class TupleSampler(BaseSampler):
    """Positive strategy x negative strategy (DESIGN section 4); returns Triplets (Pairs for
    negative="all": the chosen positive pairs and every negative pair of their anchors).

    positive: all | easy | hard | random. negative: random | hard | semihard | distance_weighted | all.
    margin: the semihard band d_ap < d_an < d_ap + margin. cutoff, nonzero_loss_cutoff:
    distance weighted sampling's clip and zero-weight distance (Wu et al. 0.5, 1.4).
    rho: rho-regularisation (Roth et al. 2020), the probability that a negative is swapped for a
    random positive of its anchor after sampling (0 = off, the samplers as published).
    """

    def __init__(
        self,
        positive: str = "all",
        negative: str = "all",
        margin: float = 0.2,
        cutoff: float = 0.5,
        nonzero_loss_cutoff: float = 1.4,
        seed: int | None = None,
        rho: float = 0.0,
    ) -> None:
        super().__init__(seed)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"sampler.rho={rho} must be a probability in [0, 1] (0: off)")
        if positive not in POSITIVE_STRATEGIES:
            raise ValueError(
                f"sampler.positive={positive!r} is not a positive strategy; choose one of {POSITIVE_STRATEGIES}"
            )
        if negative not in NEGATIVE_STRATEGIES:
            raise ValueError(
                f"sampler.negative={negative!r} is not a negative strategy; choose one of {NEGATIVE_STRATEGIES}"
            )
        if margin < 0:
            raise ValueError(
                f"sampler.margin={margin} is not valid: expected a non-negative number"
            )
        if cutoff <= 0:
            # q(d)^-1 diverges at d = 0: an unclipped duplicate pair turns the weights into NaN
            raise ValueError(
                f"sampler.cutoff={cutoff} is not valid: expected a positive number (Wu et al.: 0.5)"
            )
        if cutoff >= nonzero_loss_cutoff:
            raise ValueError(
                f"need 0 < sampler.cutoff < sampler.nonzero_loss_cutoff, got {cutoff} and {nonzero_loss_cutoff}"
            )
        self.positive = positive
        self.negative = negative
        self.margin = margin
        self.cutoff = cutoff
        self.nonzero_loss_cutoff = nonzero_loss_cutoff
        self.rho = float(rho)

    def sample(
        self, distances: Tensor, labels: Tensor, dim: int, ref_labels: Tensor | None = None
    ) -> Triplets | Pairs:
        positive_mask, negative_mask = class_masks(labels, ref_labels)
        # an anchor needs a positive and a negative (a batch of one class yields no triplet)
        positive_mask &= negative_mask.any(dim=1, keepdim=True)
        generator = self.generator(distances.device)
        a, p = select_positives(self.positive, distances, positive_mask, generator)
        tuples = select_negatives(
            self.negative,
            distances,
            negative_mask,
            a,
            p,
            generator,
            dim=dim,
            margin=self.margin,
            cutoff=self.cutoff,
            nonzero_loss_cutoff=self.nonzero_loss_cutoff,
        )
        tuples = swap_negatives(tuples, positive_mask, self.rho, generator)
        self._last = (distances, tuples)
        return tuples

    @property
    def strategies(self) -> dict[str, str]:
        return {"positive": self.positive, "negative": self.negative}

    def __repr__(self) -> str:
        rho = f", rho={self.rho}" if self.rho else ""
        return f"TupleSampler(positive={self.positive!r}, negative={self.negative!r}{rho})"
