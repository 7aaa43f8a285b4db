"""W1's look at the negatives each strategy picks: the width measure and the sampling on one batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.reproduce.claims import NEGATIVE_STRATEGIES
from dml.reproduce.negatives import BINS, sampled_negatives, summarize


def test_width_is_the_central_90_percent():
    s = summarize(np.linspace(0.0, 1.0, 101))
    assert (
        s["q05"] == pytest.approx(0.05)
        and s["q95"] == pytest.approx(0.95)
        and s["width"] == pytest.approx(0.9)
    )
    assert s["n"] == 101 and sum(s["counts"]) == 101 and len(s["counts"]) == len(BINS) - 1


def test_every_strategy_samples_one_negative_per_positive_pair_of_the_same_batch():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(4)
    centres = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=1)
    x = torch.nn.functional.normalize(
        centres[labels] + 0.3 * torch.randn(24, 16, generator=g), dim=1
    )
    picked = sampled_negatives(x, labels, seed=0)
    assert set(picked) == {"all", *NEGATIVE_STRATEGIES}
    positive_pairs = 6 * 4 * 3
    assert all(len(picked[s]) == positive_pairs for s in NEGATIVE_STRATEGIES)
    assert len(picked["all"]) == 24 * 20 // 2  # every other-class pair once
    everything = set(np.round(picked["all"], 5))
    assert all(
        set(np.round(picked[s], 5)) <= everything for s in NEGATIVE_STRATEGIES
    )  # only negative pairs
    assert picked["hard"].mean() < picked["random"].mean()  # the nearest other-class item
    # seeded: the same batch and seed pick the same negatives
    again = sampled_negatives(x, labels, seed=0)
    assert all(np.array_equal(picked[s], again[s]) for s in picked)
