"""ContrastiveLoss: hand case, gradients and pytorch-metric-learning's ContrastiveLoss."""

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ContrastiveLoss as PMLContrastiveLoss

from dml.losses import ContrastiveLoss
from dml.samplers import Triplets, TupleSampler


def circle(*degrees):
    a = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([a.cos(), a.sin()], dim=1)


def test_hand_case():
    x = circle(0, 60, 90, 180)
    labels = torch.tensor([0, 0, 1, 1])
    loss = ContrastiveLoss(pos_margin=0.5, neg_margin=1.5)
    # positive pairs (both directions): d(0,1)=1 -> .5; d(2,3)=sqrt2 -> .914
    # negative pairs: d(0,2)=sqrt2 -> .0858; d(0,3)=2 -> 0; d(1,2)=chord30=.5176 -> .982; d(1,3)=sqrt3 -> 0
    d12 = 2 * math.sin(math.radians(15))
    pos = (0.5 + (math.sqrt(2) - 0.5)) / 2
    neg = ((1.5 - math.sqrt(2)) + (1.5 - d12)) / 2
    assert loss(x, labels).item() == pytest.approx(pos + neg, abs=1e-12)
    assert loss.log_stats()["active_fraction"].item() == pytest.approx((4 + 4) / (4 + 8))
    # triplets become their (a, p) and (a, n) pairs
    t = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    assert loss(x, labels, t).item() == pytest.approx(0.5 + (1.5 - math.sqrt(2)), abs=1e-12)


def test_gradcheck(make_batch):
    x, labels = make_batch(classes=3, per_class=3, dim=4)
    loss = ContrastiveLoss(0.2, 1.2)
    assert torch.autograd.gradcheck(lambda e: loss(F.normalize(e, dim=1), labels), (x,))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("sampler", [None, "distance_weighted"])
def test_matches_pytorch_metric_learning(make_batch, seed, dtype, sampler):
    x, labels = make_batch(classes=8, per_class=5, dim=16, seed=seed, dtype=dtype)
    tuples = None
    if sampler:
        tuples = TupleSampler("all", sampler, seed=seed)(F.normalize(x, dim=1), labels)
    v1 = ContrastiveLoss(0.1, 1.1)(F.normalize(x, dim=1), labels, tuples)
    (g1,) = torch.autograd.grad(v1, x)
    theirs = PMLContrastiveLoss(pos_margin=0.1, neg_margin=1.1)
    v2 = theirs(F.normalize(x, dim=1), labels, None if tuples is None else tuple(tuples))
    (g2,) = torch.autograd.grad(v2, x)
    assert v1.item() == pytest.approx(v2.item(), abs=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5, rtol=0)


def test_no_active_term_and_bad_margins():
    x = circle(0, 0, 180, 180).requires_grad_()  # duplicates: d = 0 positives, d = 2 negatives
    value = ContrastiveLoss(0.0, 1.0)(x, torch.tensor([0, 0, 1, 1]))
    value.backward()
    assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    with pytest.raises(ValueError, match="pos_margin < loss.neg_margin"):
        ContrastiveLoss(1.0, 0.5)
