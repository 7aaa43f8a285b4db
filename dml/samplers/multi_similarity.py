"""Wang et al. 2019's multi-similarity pair mining, on cosine similarity s = 1 - d^2 / 2."""

from __future__ import annotations

from torch import Tensor

from dml.distances import similarity_from_distance
from dml.samplers.base import BaseSampler
from dml.samplers.tuples import Pairs, class_masks


class MultiSimilaritySampler(BaseSampler):
    """Keeps negative n of anchor a if S_an + epsilon > min_p S_ap, positive p if S_ap - epsilon < max_n S_an."""

    def __init__(self, epsilon: float = 0.1, seed: int | None = None) -> None:
        super().__init__(seed)
        if epsilon < 0:
            raise ValueError(
                f"sampler.epsilon={epsilon} is not valid: expected a non-negative number"
            )
        self.epsilon = epsilon

    def sample(
        self, distances: Tensor, labels: Tensor, dim: int, ref_labels: Tensor | None = None
    ) -> Pairs:
        positive_mask, negative_mask = class_masks(labels, ref_labels)
        sim = similarity_from_distance(distances)
        hardest_pos = sim.masked_fill(~positive_mask, float("inf")).min(dim=1, keepdim=True).values
        hardest_neg = sim.masked_fill(~negative_mask, float("-inf")).max(dim=1, keepdim=True).values
        keep_neg = negative_mask & (sim + self.epsilon > hardest_pos)
        keep_pos = positive_mask & (sim - self.epsilon < hardest_neg)
        pa, p = keep_pos.nonzero(as_tuple=True)
        na, n = keep_neg.nonzero(as_tuple=True)
        pairs = Pairs(pa, p, na, n)
        self._last = (distances, pairs)
        return pairs

    @property
    def strategies(self) -> dict[str, str]:
        return {"positive": "multi_similarity", "negative": "multi_similarity"}

    def __repr__(self) -> str:
        return f"MultiSimilaritySampler(epsilon={self.epsilon})"
