"""MarginLoss (Wu et al. 2017): hand cases, gradients, learnable beta, and pytorch-metric-learning."""

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import MarginLoss as PMLMarginLoss

from dml.losses import MarginLoss
from dml.samplers import Triplets, TupleSampler


def circle(*degrees):
    a = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([a.cos(), a.sin()], dim=1)


def chord(deg):
    return 2 * math.sin(math.radians(deg) / 2)  # distance of two unit vectors deg apart


def test_hand_case():
    x = circle(0, 60, 90, 180)  # d(0,1)=1, d(0,2)=sqrt2, d(0,3)=2
    labels = torch.tensor([0, 0, 1, 1])
    t = Triplets(torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([2, 3]))
    loss = MarginLoss(margin=0.2, beta=1.2)
    value = loss(x, labels, t)
    # pos terms (0.2 + 1 - 1.2)_+ = 0 twice; neg terms (0.2 + 1.2 - sqrt2)_+ = 0 and
    # (0.2 + 1.2 - d(1,3)=chord(120)=1.732)_+ = 0 -> nothing active
    assert value.item() == 0.0
    loss = MarginLoss(margin=0.3, beta=1.2)
    pos = 0.3 + 1.0 - 1.2  # 0.1, both positive pairs
    neg = [0.3 + 1.2 - math.sqrt(2), 0.3 + 1.2 - chord(120)]  # 0.0858, <0
    expected = (2 * pos + neg[0]) / 3
    assert loss(x, labels, t).item() == pytest.approx(expected, abs=1e-6)  # beta is float32
    assert loss.log_stats()["active_fraction"].item() == pytest.approx(3 / 4)


def test_nu_regularisation_and_per_class_beta():
    x = circle(0, 60, 90, 180)
    labels = torch.tensor([0, 0, 1, 1])
    t = Triplets(torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([2, 0]))
    loss = MarginLoss(margin=0.3, beta=1.2, num_classes=2, nu=0.1)
    with torch.no_grad():
        loss.beta_class[1] = 0.45  # class 1's beta = 1.65
    # triplet (0,1,2), beta 1.2: pos 0.3+1-1.2=.1, neg 0.3+1.2-sqrt2=.0858
    # triplet (3,2,0), beta 1.65: pos 0.3+sqrt2-1.65=.0642, neg 0.3+1.65-2<0 (inactive)
    terms = 0.1 + (0.3 + 1.2 - math.sqrt(2)) + (0.3 + math.sqrt(2) - 1.65)
    expected = (terms + 0.1 * (1.2 + 1.65)) / 3
    value = loss(x, labels, t)
    assert value.item() == pytest.approx(expected, abs=1e-6)
    value.backward()
    # d/d beta_0 = (-1 [pos 0] + 1 [neg 0] - 1 [pos 3] + nu * 2) / 3
    assert loss.beta.grad.item() == pytest.approx((-1 + 1 - 1 + 0.2) / 3, abs=1e-6)
    assert loss.beta_class.grad.tolist() == pytest.approx([(0 + 0.1) / 3, (-1 + 0.1) / 3], abs=1e-6)
    assert loss.log_stats()["beta_mean"].item() == pytest.approx((1.2 * 2 + 1.65 * 2) / 4)


def test_learn_beta_false_has_no_parameters():
    assert list(MarginLoss(learn_beta=False).parameters()) == []
    assert [p.shape for p in MarginLoss(num_classes=5).parameters()] == [
        torch.Size([]),
        torch.Size([5]),
    ]
    with pytest.raises(ValueError, match="num_classes=3.*labels in \\[0, 5\\]"):
        MarginLoss(num_classes=3)(circle(0, 10, 20), torch.tensor([0, 5, 0]))
    with pytest.raises(ValueError, match="loss.margin"):
        MarginLoss(margin=-0.1)


def test_gradcheck(make_batch):
    x, labels = make_batch(classes=3, per_class=3, dim=4)
    t = TupleSampler("all", "distance_weighted", seed=0)(F.normalize(x, dim=1), labels)
    loss = MarginLoss(margin=0.2, beta=0.9, learn_beta=False)
    assert torch.autograd.gradcheck(lambda e: loss(F.normalize(e, dim=1), labels, t), (x,))
    assert torch.autograd.gradcheck(lambda e: loss(F.normalize(e, dim=1), labels), (x,))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_pytorch_metric_learning_on_same_triplets(make_batch, seed, dtype):
    x, labels = make_batch(classes=8, per_class=5, dim=16, seed=seed, dtype=dtype)
    triplets = TupleSampler("all", "distance_weighted", seed=seed)(F.normalize(x, dim=1), labels)
    ours = MarginLoss(margin=0.2, beta=1.2, learn_beta=True, nu=0.0)
    theirs = PMLMarginLoss(margin=0.2, beta=1.2, learn_beta=True, nu=0.0)
    v1 = ours(F.normalize(x, dim=1), labels, triplets)
    (g1, gb1) = torch.autograd.grad(v1, (x, ours.beta))
    v2 = theirs(F.normalize(x, dim=1), labels, tuple(triplets))
    (g2, gb2) = torch.autograd.grad(v2, (x, theirs.beta))
    assert v1.item() == pytest.approx(v2.item(), abs=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5, rtol=0)
    assert gb1.item() == pytest.approx(gb2.item(), abs=1e-5)
    assert v1.item() > 0 and g1.abs().max() > 1e-3  # a real, non-trivial case


def test_no_active_term_gives_zero_and_zero_gradient():
    x = circle(0, 1, 179, 180).requires_grad_()  # classes far apart, members close
    labels = torch.tensor([0, 0, 1, 1])
    loss = MarginLoss(margin=0.2, beta=1.2, nu=0.5)
    value = loss(x, labels)
    value.backward()
    assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    assert loss.beta.grad.item() == 0.0
    assert loss.log_stats()["active_fraction"].item() == 0.0
