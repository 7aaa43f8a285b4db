"""The training objective: one distance matrix for sampler and loss, the step record it publishes,
the adapter for pytorch-metric-learning losses, and the XBM config node."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dml.config import ConfigError, validate
from dml.distances import pairwise_distance
from dml.losses import MarginLoss, TripletLoss
from dml.samplers import MultiSimilaritySampler, TupleSampler
from dml.training.objective import TrainingObjective
from dml.training.run import build_objective


def _batch(n: int = 24, classes: int = 6, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return F.normalize(torch.randn(n, dim, generator=g), dim=1), torch.arange(n) % classes


def test_loss_of_the_sampled_tuples_on_one_shared_matrix_and_the_record_of_the_step():
    emb, labels = _batch()
    objective = TrainingObjective(MarginLoss(), TupleSampler("all", "distance_weighted", seed=3))
    value = objective(emb, labels)
    sampler = TupleSampler("all", "distance_weighted", seed=3)
    distances = pairwise_distance(emb)
    tuples = sampler(emb, labels, distances=distances.detach())
    assert torch.equal(value, MarginLoss()(emb, labels, tuples, distances=distances))
    step = objective.last_step
    assert all(torch.equal(a, b) for a, b in zip(step.tuples, tuples, strict=True))
    assert {k: torch.equal(v, sampler.last_distances[k]) for k, v in step.picked().items()} == {
        "positive": True,
        "negative": True,
    }
    batch_distances, batch_labels = step.batch_pairs()
    assert torch.equal(batch_distances, distances) and torch.equal(batch_labels, labels)
    assert (
        set(step.stats) >= {"active_fraction", "beta_mean"}
        and not step.stats["beta_mean"].requires_grad
    )


def test_a_pytorch_metric_learning_loss_goes_through_the_adapter():
    from pytorch_metric_learning.losses import TripletMarginLoss

    emb, labels = _batch()
    ours = TrainingObjective(TripletLoss(margin=0.2))(emb, labels)
    theirs = TrainingObjective(TripletMarginLoss(margin=0.2))(emb, labels)
    torch.testing.assert_close(theirs, TripletMarginLoss(margin=0.2)(emb, labels))
    assert torch.isfinite(ours) and torch.isfinite(theirs)
    # no sampler, a loss that reads no distances: no matrix is computed, none is recorded
    assert TrainingObjective(TripletMarginLoss()).last_step is None
    objective = TrainingObjective(TripletMarginLoss())
    objective(emb, labels)
    assert objective.last_step.distances is None and objective.last_step.picked() == {}


def test_samplers_name_their_strategies():
    assert TrainingObjective(TripletLoss(), TupleSampler("easy", "semihard")).strategies() == {
        "positive": "easy",
        "negative": "semihard",
    }
    assert TrainingObjective(TripletLoss(), MultiSimilaritySampler()).strategies() == {
        "positive": "multi_similarity",
        "negative": "multi_similarity",
    }
    assert TrainingObjective(TripletLoss()).strategies() == {}


def test_xbm_has_a_config_node_of_its_own(compose_cfg):
    objective = build_objective(compose_cfg("xbm.memory_size=32", "xbm.memory_start=2"))
    assert objective.memory.size == 32 and objective.memory.start == 2
    assert build_objective(compose_cfg()).memory is None
    with pytest.raises(
        ConfigError, match=r"xbm.memory_size=-1 is not valid: expected a non-negative"
    ):
        validate(compose_cfg("xbm.memory_size=-1"))


def test_a_bad_loss_value_fails_before_any_data_is_built(compose_cfg, monkeypatch):
    from dml.training import run

    def no_data(cfg):
        raise AssertionError("the datamodule was built before the loss checked its arguments")

    monkeypatch.setattr(run, "build_datamodule", no_data)
    with pytest.raises(
        ConfigError, match=r"loss.margin=-0.1 is not valid: expected a non-negative number"
    ):
        run.train(compose_cfg("logger=none", "loss=triplet", "loss.margin=-0.1"))
