"""The Evaluator: a dataset config's `metrics` block passes through as one mapping."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from dml.config import ConfigError
from dml.metrics import evaluate_embeddings
from dml.training.evaluation import Evaluator, score


def _splits(n: int = 60, classes: int = 6) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    emb = torch.nn.functional.normalize(
        torch.randn(n, 8, generator=g) + labels[:, None] * 0.3, dim=1
    )
    return {"test": (emb, labels)}


def test_every_option_of_the_metrics_block_reaches_evaluate_embeddings():
    splits = _splits()
    block = OmegaConf.create({"ks": [1, 4], "nmi": False, "retrieval": True})
    evaluator = Evaluator(block)
    expected = evaluate_embeddings(*splits["test"], ks=(1, 4), nmi=False)
    assert evaluator.score(splits) == {k: float(v) for k, v in expected.items()}
    assert evaluator.ks == (1, 4)
    # an option no training code names (retrieval=false) still arrives
    assert set(Evaluator({"nmi": True, "retrieval": False}).score(splits)) == {"nmi", "f1"}
    assert score(splits, ks=[1, 4], nmi=False) == evaluator.score(splits)


def test_an_unknown_metric_option_names_the_known_ones():
    with pytest.raises(
        ConfigError, match=r"dataset.metrics.recall is not a metric option.*ks, nmi, retrieval"
    ):
        Evaluator({"recall": [1]})


def test_defaults_without_a_metrics_block():
    assert Evaluator().ks == (1, 2, 4, 8) and Evaluator(None).split_names == ["test"]
