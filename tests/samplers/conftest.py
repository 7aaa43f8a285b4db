"""Fixtures of the sampler tests: seeded batches of L2-normalised embeddings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_threaded(one_thread) -> None:
    """Every test here runs with one torch thread (tests/conftest.py's one_thread)."""


@pytest.fixture
def make_batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """make_batch(classes, per_class, dim, seed) -> (embeddings [B, dim] on the sphere, labels [B])."""

    def _make(
        classes: int = 6, per_class: int = 4, dim: int = 8, seed: int = 0, dtype=torch.float32
    ):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(classes * per_class, dim, generator=g, dtype=torch.float64)
        labels = torch.arange(classes).repeat_interleave(per_class)
        perm = torch.randperm(len(labels), generator=g)
        return torch.nn.functional.normalize(x, dim=1).to(dtype), labels[perm]

    return _make
