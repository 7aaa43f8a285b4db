"""Every loss with every sampler config: shared distances, edge cases, reduced precision, bad input."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dml.distances import pairwise_distance
from dml.losses import ContrastiveLoss, MarginLoss, MultiSimilarityLoss, TripletLoss
from dml.losses.build import build_loss
from dml.samplers import Triplets

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SAMPLERS = [
    "all",
    "random",
    "semihard",
    "hard",
    "distance_weighted",
    "distance_weighted_rho",
    "easy_positive",
    "multi_similarity",
]
LOSSES = ["margin", "triplet", "contrastive", "multi_similarity"]
# configs/loss/ also holds the Reality Check's other losses (pytorch-metric-learning classes and
# dml's margin_per_class / multi_similarity_miner), tested in tests/integration/test_loss_choices.py
OTHER_LOSS_FILES = [
    "margin_per_class",
    "multi_similarity_miner",
    "ntxent",
    "proxy_nca",
    "normalized_softmax",
    "cosface",
    "arcface",
    "fastap",
    "snr_contrastive",
    "soft_triple",
    "proxy_anchor",
]


def build(group: str, name: str):
    node = OmegaConf.load(CONFIGS / group / f"{name}.yaml")
    # a loss node is built by dml's builder (its `_name_` is no argument of the class)
    return build_loss(node) if group == "loss" else instantiate(node)


def test_config_files_are_exactly_the_documented_choices():
    assert sorted(p.stem for p in (CONFIGS / "sampler").glob("*.yaml")) == sorted(SAMPLERS)
    assert sorted(p.stem for p in (CONFIGS / "loss").glob("*.yaml")) == sorted(
        LOSSES + OTHER_LOSS_FILES
    )


@pytest.mark.parametrize("sampler_name", SAMPLERS)
@pytest.mark.parametrize("loss_name", LOSSES)
def test_every_loss_with_every_sampler(make_batch, sampler_name, loss_name):
    x, labels = make_batch(classes=6, per_class=4, dim=16, dtype=torch.float32)
    sampler, loss = build("sampler", sampler_name), build("loss", loss_name)
    e = F.normalize(x, dim=1)
    d = pairwise_distance(e)
    tuples = sampler(e, labels, d.detach())
    value = loss(e, labels, tuples, d)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value) and value.item() > 0
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    stats = loss.log_stats()
    assert 0 < stats["active_fraction"].item() <= 1
    # the precomputed matrix gives what the loss computes on its own
    x2 = x.detach().clone().requires_grad_()
    value2 = loss(F.normalize(x2, dim=1), labels, tuples)
    value2.backward()
    assert value2.item() == pytest.approx(value.item(), abs=1e-6)
    assert torch.allclose(x2.grad, x.grad, atol=1e-6)


ALL_LOSSES = [MarginLoss, TripletLoss, ContrastiveLoss, MultiSimilarityLoss]


@pytest.mark.parametrize("loss_cls", ALL_LOSSES)
@pytest.mark.parametrize("sampler_name", SAMPLERS)
def test_one_class_batch_gives_zero_loss_and_zero_gradient(make_batch, loss_cls, sampler_name):
    x, _ = make_batch(classes=2, per_class=4, dtype=torch.float32)
    labels = torch.zeros(8, dtype=torch.long)
    e = F.normalize(x, dim=1)
    tuples = build("sampler", sampler_name)(e, labels)
    value = loss_cls()(e, labels, tuples)
    value.backward()
    if loss_cls is not MultiSimilarityLoss or sampler_name != "all":
        # the multi-similarity loss has a positive term of its own, even without negatives
        assert value.item() == 0.0
        assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("loss_cls", ALL_LOSSES)
def test_class_with_one_image(make_batch, loss_cls):
    x, _ = make_batch(classes=2, per_class=4, dtype=torch.float32)
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2])
    value = loss_cls()(F.normalize(x, dim=1), labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("loss_cls", ALL_LOSSES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_compute_in_float32(make_batch, loss_cls, dtype):
    x, labels = make_batch(classes=6, per_class=4, dim=64, dtype=torch.float32)
    sampler = build("sampler", "distance_weighted")
    e32 = F.normalize(x.detach(), dim=1)
    tuples = sampler(e32, labels)
    reference = loss_cls()(e32, labels, tuples)
    xh = x.detach().to(dtype).requires_grad_()
    value = loss_cls()(F.normalize(xh, dim=1), labels, tuples)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert xh.grad.dtype == dtype and torch.isfinite(xh.grad).all()
    assert value.item() == pytest.approx(reference.item(), rel=0.05, abs=0.02)


def test_multi_similarity_stays_finite_with_extreme_scale(make_batch):
    """beta = 50 on fp16 embeddings: exp(50 (S - 0.5)) would overflow without log-sum-exp."""
    x, labels = make_batch(classes=6, per_class=4, dim=32, dtype=torch.float16)
    value = MultiSimilarityLoss(alpha=2.0, beta=500.0, base=0.0)(F.normalize(x, dim=1), labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_bad_input_names_the_problem(make_batch):
    x, labels = make_batch(dtype=torch.float32)
    loss = TripletLoss()
    with pytest.raises(ValueError, match="labels must be a 1-D tensor of length 24"):
        loss(x, labels[:3])
    with pytest.raises(ValueError, match=r"distances must be the \[24, 24\] matrix"):
        loss(x, labels, None, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"embeddings must be \[B, D\]"):
        loss(x[0], labels)
    bad = (torch.tensor([0]), torch.tensor([1]), torch.tensor([99]))
    with pytest.raises(ValueError, match="outside the batch of 24"):
        loss(x, labels, bad)
    with pytest.raises(IndexError, match="99"):  # Triplets (a sampler's output) meet torch's check
        loss(x, labels, Triplets(*bad))


@pytest.mark.parametrize("loss_name", LOSSES)
def test_all_sampler_equals_no_sampler(make_batch, loss_name):
    x, labels = make_batch(classes=5, per_class=4, dim=16)
    e = F.normalize(x, dim=1)
    loss = build("loss", loss_name)
    with_sampler = loss(e, labels, build("sampler", "all")(e, labels))
    assert with_sampler.item() == pytest.approx(loss(e, labels).item(), abs=1e-12)
