"""Tuple samplers: which (anchor, positive, negative) tuples of a batch are trained on."""

from dml.samplers.base import BaseSampler
from dml.samplers.distance_weighted import (
    distance_weighted_probabilities,
    distance_weighted_weights,
)
from dml.samplers.multi_similarity import MultiSimilaritySampler
from dml.samplers.tuple_sampler import TupleSampler
from dml.samplers.tuples import Pairs, Triplets, all_pairs, all_triplets, to_pairs, to_triplets

__all__ = [
    "BaseSampler",
    "MultiSimilaritySampler",
    "Pairs",
    "Triplets",
    "TupleSampler",
    "all_pairs",
    "all_triplets",
    "distance_weighted_probabilities",
    "distance_weighted_weights",
    "to_pairs",
    "to_triplets",
]
