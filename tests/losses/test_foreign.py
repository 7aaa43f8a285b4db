"""ForeignLoss: a pytorch-metric-learning loss gets dml's tuples and the cross-batch references
as its own arguments, and its "not supported" errors become ConfigErrors naming the fix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import FastAPLoss, RankedListLoss, TripletMarginLoss

from dml.config import ConfigError
from dml.distances import pairwise_distance
from dml.losses import TripletLoss
from dml.losses.foreign import ForeignLoss
from dml.samplers import Triplets, TupleSampler


def _batch(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, 8, generator=g, dtype=torch.float64), dim=1)
    return x, torch.arange(n) % classes


def test_the_tuples_reach_the_loss():
    x, labels = _batch(12, 3, seed=0)
    triplets = TupleSampler("all", "hard")(x, labels)
    foreign = ForeignLoss(TripletMarginLoss(margin=0.2))
    ours = TripletLoss(margin=0.2)
    assert foreign(x, labels, triplets).item() == pytest.approx(
        ours(x, labels, triplets).item(), abs=1e-9
    )
    # every triplet (no tuples) is another value: the case tells the two apart
    assert foreign(x, labels, None).item() == pytest.approx(ours(x, labels).item(), abs=1e-9)
    assert abs(foreign(x, labels, triplets).item() - foreign(x, labels, None).item()) > 1e-3


def test_the_references_and_their_labels_reach_the_loss():
    """Anchors from the batch, positives and negatives from 7 references with their own labels."""
    x, labels = _batch(6, 3, seed=1)
    ref, ref_labels = _batch(7, 3, seed=2)
    ref_labels = ref_labels.flip(0)
    value = ForeignLoss(TripletMarginLoss(margin=0.2))(x, labels, None, (ref, ref_labels))
    every = [
        (a, p, n)
        for a in range(6)
        for p in range(7)
        for n in range(7)
        if labels[a] == ref_labels[p] and labels[a] != ref_labels[n]
    ]
    triplets = Triplets(*(torch.tensor([t[i] for t in every]) for i in range(3)))
    expected = TripletLoss(margin=0.2).from_distances(pairwise_distance(x, ref), labels, triplets)
    assert value.item() == pytest.approx(expected.item(), abs=1e-9) and value.item() > 0


def test_unsupported_inputs_name_the_fix_other_errors_pass_through():
    x, labels = _batch(6, 3, seed=0)
    triplets = TupleSampler("all", "hard")(x, labels)
    with pytest.raises(
        ConfigError, match="loss RankedListLoss: it takes no tuples; drop the sampler"
    ):
        ForeignLoss(RankedListLoss(margin=0.4, Tn=1))(x, labels, triplets)
    with pytest.raises(ConfigError, match="loss FastAPLoss: .*set xbm.memory_size=0"):
        ForeignLoss(FastAPLoss())(x, labels, None, (x.clone(), labels.clone()))

    def broken(*args):
        raise ValueError("labels must be 1-D")

    with pytest.raises(ValueError, match="labels must be 1-D") as err:
        ForeignLoss(broken)(x, labels, None)
    assert type(err.value) is ValueError
    with pytest.raises(TypeError, match="is not callable; name a loss class in loss._target_"):
        ForeignLoss(3)
