"""Fixtures of the loss tests: seeded raw embeddings (leaf tensors) and labels."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_threaded(one_thread) -> None:
    """Every test here runs with one torch thread (tests/conftest.py's one_thread)."""


@pytest.fixture
def make_batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """make_batch(classes, per_class, dim, seed, dtype) -> (raw leaf x [B, dim], labels [B]).

    Losses are fed F.normalize(x), as the model's head does, so that gradients w.r.t. x compare
    across implementations that compute distances differently.
    """

    def _make(classes=6, per_class=4, dim=8, seed=0, dtype=torch.float64):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(classes * per_class, dim, generator=g, dtype=torch.float64)
        labels = torch.arange(classes).repeat_interleave(per_class)
        labels = labels[torch.randperm(len(labels), generator=g)]
        return x.to(dtype).requires_grad_(), labels

    return _make
