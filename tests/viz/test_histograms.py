import numpy as np
import torch

from dml.viz.histograms import DistanceHistograms, bin_edges, density, distance_counts


def test_counts_match_numpy_and_add_up_over_batches(rng):
    a, b = rng.uniform(0, 2, 500), rng.uniform(0, 2, 300)
    h = DistanceHistograms(bins=20)
    h.add("neg", torch.as_tensor(a, dtype=torch.float32))
    h.add("neg", torch.as_tensor(b, dtype=torch.float32))
    expected, _ = np.histogram(np.concatenate([a, b]), bins=bin_edges(20))
    assert np.array_equal(h.counts()["neg"], expected)
    h.reset()
    assert not h and h.counts() == {}


def test_out_of_range_values_land_in_the_end_bins():
    counts = distance_counts(torch.tensor([-0.1, 2.5, 1.0]), bins=4).numpy()
    assert counts.tolist() == [1, 0, 1, 1]


def test_density_integrates_to_one_and_empty_stays_zero():
    edges = bin_edges(10)
    assert np.isclose((density(np.arange(10), edges) * np.diff(edges)).sum(), 1.0)
    assert not density(np.zeros(10), edges).any()


def test_mask_counts_only_the_selected_entries(rng):
    d = torch.as_tensor(rng.uniform(0, 2, (30, 30)), dtype=torch.float32)
    mask = torch.as_tensor(rng.random((30, 30)) < 0.3)
    expected, _ = np.histogram(d[mask].numpy(), bins=bin_edges(25))
    assert np.array_equal(distance_counts(d, bins=25, mask=mask).numpy(), expected)
