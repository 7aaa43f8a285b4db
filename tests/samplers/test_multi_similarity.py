"""Multi-similarity pair mining: a hand case and agreement with pytorch-metric-learning's miner."""

import pytest
import torch
from pytorch_metric_learning.miners import MultiSimilarityMiner

from dml.distances import pairwise_distance
from dml.samplers import MultiSimilaritySampler, Pairs


def pair_set(a, b):
    return set(zip(a.tolist(), b.tolist(), strict=True))


def test_hand_case():
    # points on a circle at angles (degrees): cosine similarity is the cosine of the angle between
    angles = torch.tensor([0.0, 20.0, 100.0, 60.0, 95.0]).deg2rad()
    x = torch.stack([angles.cos(), angles.sin()], dim=1).double()
    labels = torch.tensor([0, 0, 0, 1, 1])
    a1, p, a2, n = MultiSimilaritySampler(epsilon=0.1)(x, labels)
    pos, neg = pair_set(a1, p), pair_set(a2, n)
    # anchor 0: positives 1 (S=cos20=.94), 2 (cos100=-.17); negatives 3 (cos60=.5), 4 (cos95=-.09)
    #   positive kept if S - .1 < max_neg = .5: only 2; negative kept if S + .1 > min_pos = -.17: both
    assert {p_ for a_, p_ in pos if a_ == 0} == {2}
    assert {n_ for a_, n_ in neg if a_ == 0} == {3, 4}
    # anchor 3: positive 4 (cos35=.82); negatives 0 (cos60=.5), 1 (cos40=.77), 2 (cos40=.77)
    #   negative kept if S + .1 > .82: 1 and 2; positive kept since .82 - .1 < max_neg = .77
    assert {p_ for a_, p_ in pos if a_ == 3} == {4}
    assert {n_ for a_, n_ in neg if a_ == 3} == {1, 2}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_pairs_as_pytorch_metric_learning(make_batch, seed):
    x, labels = make_batch(classes=8, per_class=5, dim=16, seed=seed, dtype=torch.float64)
    ours = MultiSimilaritySampler(epsilon=0.1)(x, labels)
    assert isinstance(ours, Pairs)
    theirs = MultiSimilarityMiner(epsilon=0.1)(x, labels)
    assert pair_set(ours[0], ours[1]) == pair_set(theirs[0], theirs[1])
    assert pair_set(ours[2], ours[3]) == pair_set(theirs[2], theirs[3])
    assert 0 < len(ours[0]) < 8 * 5 * 4 and 0 < len(ours[2]) < 8 * 5 * 35


def test_one_class_and_last_distances(make_batch):
    x, labels = make_batch(classes=2, per_class=3)
    sampler = MultiSimilaritySampler()
    assert all(t.numel() == 0 for t in sampler(x, torch.zeros(6, dtype=torch.long)))
    pa, p, na, n = sampler(x, labels)
    assert sampler.last_distances["positive"].shape == pa.shape
    assert sampler.last_distances["negative"].shape == na.shape
    with pytest.raises(ValueError, match="epsilon"):
        MultiSimilaritySampler(epsilon=-0.1)


def test_references_beyond_the_batch(make_batch):
    x, labels = make_batch(classes=4, per_class=3, dim=8, dtype=torch.float64)
    extra, extra_labels = make_batch(classes=4, per_class=2, dim=8, seed=5, dtype=torch.float64)
    ref, ref_labels = torch.cat([x, extra]), torch.cat([labels, extra_labels])
    pa, p, na, n = MultiSimilaritySampler().sample(pairwise_distance(x, ref), labels, 8, ref_labels)
    theirs = MultiSimilarityMiner(epsilon=0.1)(x, labels, ref, ref_labels)
    # PML counts column i of row i (the anchor itself, S = 1) as a positive when given a separate
    # reference set; every anchor here has 4 other positives, so the mining thresholds agree
    theirs_pos = {(a, q) for a, q in pair_set(theirs[0], theirs[1]) if a != q}
    assert pair_set(pa, p) == theirs_pos and len(theirs_pos) > 0
    assert pair_set(na, n) == pair_set(theirs[2], theirs[3])
