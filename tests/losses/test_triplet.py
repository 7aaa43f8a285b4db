"""TripletLoss: hand case, gradients, pytorch-metric-learning's TripletMarginLoss, conversions."""

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import TripletMarginLoss

from dml.losses import TripletLoss
from dml.samplers import MultiSimilaritySampler, Pairs, Triplets, TupleSampler


def circle(*degrees):
    a = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([a.cos(), a.sin()], dim=1)


def test_hand_case():
    x = circle(0, 60, 90, 120)  # from 0: d=1 (60), sqrt2 (90), sqrt3 (120)
    labels = torch.tensor([0, 0, 1, 1])
    t = Triplets(torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), torch.tensor([2, 3, 2]))
    # (1 - sqrt2 + .5) = .0858; (1 - sqrt3 + .5) < 0; from 1: d(1,2)=chord(30)=.5176 -> 1-.5176+.5
    d12 = 2 * math.sin(math.radians(15))
    expected = ((1 - math.sqrt(2) + 0.5) + (1 - d12 + 0.5)) / 2
    loss = TripletLoss(margin=0.5)
    assert loss(x, labels, t).item() == pytest.approx(expected, abs=1e-12)
    assert loss.log_stats()["active_fraction"].item() == pytest.approx(2 / 3)


def test_pairs_form_every_triplet_that_shares_an_anchor():
    x = circle(0, 60, 90, 120)
    labels = torch.tensor([0, 0, 1, 1])
    pairs = Pairs(torch.tensor([0]), torch.tensor([1]), torch.tensor([0, 0]), torch.tensor([2, 3]))
    t = Triplets(torch.tensor([0, 0]), torch.tensor([1, 1]), torch.tensor([2, 3]))
    loss = TripletLoss(margin=0.5)
    assert loss(x, labels, pairs).item() == loss(x, labels, t).item()


def test_gradcheck(make_batch):
    x, labels = make_batch(classes=3, per_class=3, dim=4)
    loss = TripletLoss(margin=0.3)
    assert torch.autograd.gradcheck(lambda e: loss(F.normalize(e, dim=1), labels), (x,))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("sampler", [None, "semihard", "multi_similarity"])
def test_matches_pytorch_metric_learning(make_batch, seed, dtype, sampler):
    x, labels = make_batch(classes=8, per_class=5, dim=16, seed=seed, dtype=dtype)
    e = F.normalize(x, dim=1)
    if sampler is None:
        tuples = None
    elif sampler == "semihard":
        tuples = TupleSampler("all", "semihard", seed=0)(e, labels)
    else:
        tuples = MultiSimilaritySampler()(e, labels)  # Pairs: converted to triplets by both
    v1 = TripletLoss(margin=0.2)(F.normalize(x, dim=1), labels, tuples)
    (g1,) = torch.autograd.grad(v1, x)
    theirs = TripletMarginLoss(margin=0.2, triplets_per_anchor="all")
    v2 = theirs(F.normalize(x, dim=1), labels, None if tuples is None else tuple(tuples))
    (g2,) = torch.autograd.grad(v2, x)
    assert v1.item() == pytest.approx(v2.item(), abs=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5, rtol=0)
    assert v1.item() > 0


def test_no_active_triplet_gives_zero_and_zero_gradient():
    x = circle(0, 1, 179, 180).requires_grad_()
    value = TripletLoss(margin=0.2)(x, torch.tensor([0, 0, 1, 1]))
    value.backward()
    assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_active_fraction_is_the_share_of_non_zero_triplets():
    x = circle(0, 60, 90, 180)  # d(0,1)=1, d(0,2)=sqrt2, d(0,3)=2
    labels = torch.tensor([0, 0, 1, 1])
    loss = TripletLoss(margin=0.2)
    assert loss.log_stats() == {}  # nothing before the first call
    one = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))  # 1 - sqrt2 + 0.2 < 0
    loss(x, labels, one)
    assert loss.log_stats()["active_fraction"].item() == 0.0
    loss = TripletLoss(margin=0.5)  # 1 - sqrt2 + 0.5 > 0: the single triplet is active
    assert loss(x, labels, one).item() == pytest.approx(1.5 - math.sqrt(2))
    assert loss.log_stats()["active_fraction"].item() == 1.0
    two = Triplets(
        torch.tensor([0, 0]), torch.tensor([1, 1]), torch.tensor([2, 3])
    )  # 1 - 2 + 0.5 < 0
    loss(x, labels, two)
    assert loss.log_stats()["active_fraction"].item() == 0.5
