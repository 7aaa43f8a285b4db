"""MultiSimilarityLoss: hand case, gradients, pytorch-metric-learning with its miner, stability."""

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import MultiSimilarityLoss as PMLMultiSimilarityLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner

from dml.losses import MultiSimilarityLoss
from dml.losses.multi_similarity import log1p_sum_exp
from dml.samplers import MultiSimilaritySampler, Pairs


def circle(*degrees):
    a = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([a.cos(), a.sin()], dim=1)


def test_hand_case():
    x = circle(0, 60, 90)
    labels = torch.tensor([0, 0, 1])
    pairs = Pairs(torch.tensor([0]), torch.tensor([1]), torch.tensor([0, 1]), torch.tensor([2, 2]))
    alpha, beta, lam = 2.0, 10.0, 0.5
    # anchor 0: positive S=cos60=.5, negative S=cos90=0; anchor 1: negative S=cos30
    a0 = (
        math.log1p(math.exp(-alpha * (0.5 - lam))) / alpha
        + math.log1p(math.exp(beta * (0 - lam))) / beta
    )
    a1 = math.log1p(math.exp(beta * (math.cos(math.radians(30)) - lam))) / beta
    expected = (a0 + a1 + 0.0) / 3  # anchor 2 has no pair: contributes 0, still counted
    loss = MultiSimilarityLoss(alpha=alpha, beta=beta, base=lam)
    assert loss(x, labels, pairs).item() == pytest.approx(expected, abs=1e-12)
    assert loss.log_stats()["active_fraction"].item() == pytest.approx(2 / 3)


def test_log1p_sum_exp_is_stable_and_exact():
    x = torch.tensor(
        [[1000.0, 0.0, -1000.0], [0.5, -0.5, 2.0], [3.0, 3.0, 3.0]], dtype=torch.float64
    )
    mask = torch.tensor([[True, True, True], [True, False, True], [False, False, False]])
    got = log1p_sum_exp(x, mask)
    assert got[0].item() == pytest.approx(1000.0)
    assert got[1].item() == pytest.approx(math.log(1 + math.exp(0.5) + math.exp(2.0)), abs=1e-12)
    assert got[2].item() == 0.0
    x.requires_grad_()
    log1p_sum_exp(x, mask).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[~mask] == 0).all()


def test_gradcheck(make_batch):
    x, labels = make_batch(classes=3, per_class=3, dim=4)
    loss = MultiSimilarityLoss(alpha=2.0, beta=10.0, base=0.5)
    assert torch.autograd.gradcheck(lambda e: loss(F.normalize(e, dim=1), labels), (x,))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_pytorch_metric_learning_with_its_miner(make_batch, seed, dtype):
    x, labels = make_batch(classes=8, per_class=5, dim=16, seed=seed, dtype=dtype)
    pairs = MultiSimilaritySampler(epsilon=0.1)(F.normalize(x, dim=1), labels)
    v1 = MultiSimilarityLoss(2.0, 50.0, 0.5)(F.normalize(x, dim=1), labels, pairs)
    (g1,) = torch.autograd.grad(v1, x)
    e = F.normalize(x, dim=1)
    mined = MultiSimilarityMiner(epsilon=0.1)(e, labels)
    v2 = PMLMultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)(e, labels, mined)
    (g2,) = torch.autograd.grad(v2, x)
    assert v1.item() == pytest.approx(v2.item(), abs=1e-5)
    assert torch.allclose(g1, g2, atol=1e-5, rtol=0)
    # and without a miner: every pair
    v3 = MultiSimilarityLoss()(F.normalize(x, dim=1), labels)
    v4 = PMLMultiSimilarityLoss()(F.normalize(x, dim=1), labels)
    assert v3.item() == pytest.approx(v4.item(), abs=1e-5)


def test_no_pair_gives_zero_and_zero_gradient():
    x = circle(0, 30, 60).requires_grad_()
    empty = torch.empty(0, dtype=torch.long)
    value = MultiSimilarityLoss()(x, torch.tensor([0, 1, 2]), Pairs(empty, empty, empty, empty))
    value.backward()
    assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    with pytest.raises(ValueError, match="alpha and loss.beta must be > 0"):
        MultiSimilarityLoss(alpha=0.0)
