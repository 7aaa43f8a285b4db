"""Distance weighted sampling (Wu et al. 2017): weights, fallbacks, and the sampled distribution."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dml.distances import pairwise_distance
from dml.samplers import TupleSampler, distance_weighted_probabilities, distance_weighted_weights
from dml.samplers.tuples import class_masks


def reference_probabilities(d: np.ndarray, labels: np.ndarray, dim: int, cutoff=0.5, nzl=1.4):
    """The formula written out directly in float64 NumPy (no log space), as an independent oracle."""
    dc = np.maximum(d, cutoff)
    w = dc ** (2.0 - dim) * (1.0 - dc**2 / 4.0) ** (-(dim - 3.0) / 2.0)
    w = w * (labels[:, None] != labels[None, :]) * (dc < nzl)
    return w / w.sum(axis=1, keepdims=True)


def test_probabilities_match_the_formula(make_batch):
    x, labels = make_batch(classes=6, per_class=5, dim=12, dtype=torch.float64)
    d = pairwise_distance(x)
    _, negative = class_masks(labels)
    probs = distance_weighted_probabilities(d, negative, dim=12)
    ref = reference_probabilities(d.numpy(), labels.numpy(), 12)
    np.testing.assert_allclose(probs.numpy(), ref, rtol=1e-10, atol=1e-14)
    assert torch.allclose(probs.sum(1), torch.ones(30, dtype=torch.float64))


def test_large_dimension_stays_finite(make_batch):
    """D = 512: q(d)^-1 spans hundreds of orders of magnitude; log-space keeps it finite."""
    x, labels = make_batch(classes=8, per_class=4, dim=512, seed=1)
    # pull pairs together so that some distances fall below the 1.4 cutoff
    x = torch.nn.functional.normalize(x + 0.8 * x[torch.arange(32) // 2 * 2], dim=1)
    d = pairwise_distance(x)
    _, negative = class_masks(labels)
    probs = distance_weighted_probabilities(d, negative, dim=512)
    assert torch.isfinite(probs).all() and (probs[~negative] == 0).all()
    assert torch.allclose(probs.sum(1), torch.ones(32))


def test_never_same_class_never_nan_with_duplicates_and_antipodes():
    """Exact duplicates (d = 0) and antipodal points (d = 2, log(1 - d^2/4) = -inf)."""
    base = torch.nn.functional.normalize(
        torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=1
    )
    x = torch.cat([base, base, -base])  # 12 points
    labels = torch.tensor([0, 1, 2, 3, 1, 2, 3, 0, 2, 3, 0, 1])
    sampler = TupleSampler("all", "distance_weighted", seed=0)
    for _ in range(50):
        a, p, n = sampler(x, labels)
        assert (labels[a] != labels[n]).all() and (labels[a] == labels[p]).all()
        assert torch.isfinite(sampler.last_distances["negative"]).all()
    d = pairwise_distance(x)
    _, negative = class_masks(labels)
    probs = distance_weighted_probabilities(d, negative, dim=8)
    assert torch.isfinite(probs).all() and (probs[~negative] == 0).all()


def test_uniform_fallback_when_no_negative_is_closer_than_the_cutoff():
    """Two antipodal clusters: every negative sits at d ~ 2 >= 1.4, so rows fall back to uniform."""
    g = torch.Generator().manual_seed(0)
    e1 = torch.zeros(16)
    e1[0] = 1.0
    x = torch.cat(
        [e1 + 0.05 * torch.randn(6, 16, generator=g), -e1 + 0.05 * torch.randn(6, 16, generator=g)]
    )
    x = torch.nn.functional.normalize(x, dim=1)
    labels = torch.tensor([0] * 6 + [1] * 6)
    d = pairwise_distance(x)
    _, negative = class_masks(labels)
    assert (d[negative] > 1.4).all()
    probs = distance_weighted_probabilities(d, negative, dim=16)
    assert torch.allclose(probs[negative], torch.full((72,), 1 / 6))
    sampler = TupleSampler("all", "distance_weighted", seed=0)
    counts = torch.zeros(12, 12)
    for _ in range(200):
        a, _, n = sampler(x, labels)
        counts.index_put_((a, n), torch.ones(len(a)), accumulate=True)
    assert (counts[~negative] == 0).all()
    observed = counts[negative].numpy()  # 1000 draws per anchor over 6 negatives
    assert stats.chisquare(observed.reshape(12, 6), axis=1).pvalue.min() > 1e-4


def sampled_vs_expected(sampler, x, labels, calls, bins):
    """Histogram of sampled negative distances and its expectation under q(d)^-1 weighting."""
    d = pairwise_distance(x.double()).numpy()
    probs = reference_probabilities(d, labels.numpy(), x.shape[1])
    # per anchor: probability mass of each distance bin
    per_anchor = np.stack([np.histogram(d[i], bins, weights=probs[i])[0] for i in range(len(d))])
    observed = np.zeros(len(bins) - 1)
    draws = np.zeros(len(d))
    for _ in range(calls):
        a, _, n = sampler(x, labels)
        observed += np.histogram(d[a.numpy(), n.numpy()], bins)[0]
        draws += np.bincount(a.numpy(), minlength=len(d))
    return observed, draws @ per_anchor


def test_sampled_distances_follow_inverse_density_weighting(make_batch):
    """Chi-square over 12 distance bins, 60,000 draws: the q(d)^-1 law fits; the uniform law does not."""
    x, labels = make_batch(classes=10, per_class=5, dim=10, seed=4, dtype=torch.float64)
    d = pairwise_distance(x)
    _, negative = class_masks(labels)
    valid = d[negative & (d < 1.4)].numpy()
    bins = np.quantile(valid, np.linspace(0, 1, 13))
    bins[0], bins[-1] = 0.0, 1.4
    sampler = TupleSampler("all", "distance_weighted", seed=0)
    observed, expected = sampled_vs_expected(sampler, x, labels, 300, bins)
    assert observed.sum() == 300 * 200  # every draw lands below the cutoff
    fit = stats.chisquare(observed, expected * observed.sum() / expected.sum())
    assert fit.pvalue > 1e-3, (observed, expected)
    # power: uniform negatives give a clearly different histogram under the same test
    uniform = TupleSampler("all", "random", seed=0)
    obs_u, _ = sampled_vs_expected(uniform, x, labels, 100, bins)
    misfit = stats.chisquare(obs_u, expected * obs_u.sum() / expected.sum())
    assert misfit.pvalue < 1e-10


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_probabilities_are_finite(make_batch, dtype):
    x, labels = make_batch(classes=6, per_class=4, dim=128)
    d = pairwise_distance(x.to(dtype))
    _, negative = class_masks(labels)
    probs = distance_weighted_probabilities(d, negative, dim=128)
    assert torch.isfinite(probs).all() and (probs[~negative] == 0).all()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    dim=st.integers(2, 64),
    cutoffs=st.sampled_from([None, (0.05, 0.3), (0.5, 1.4), (1.0, 1.2), (0.7, 2.5)]),
)
def test_weights_follow_the_formula_on_any_distances(seed, dim, cutoffs):
    """Any distances in [0, 1.9] (below the clip, at and beyond the zero-weight cutoff): the
    probabilities are the formula's (clipped below at cutoff, 0 from nonzero_loss_cutoff on, the
    defaults Wu et al.'s 0.5 and 1.4); the weights have row max 1 where a row has a valid
    negative, are uniform 1 over its negatives where it has none, and all 0 without negatives."""
    g = torch.Generator().manual_seed(seed)
    n = 10
    d = 1.9 * torch.rand(n, n, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,), generator=g)
    cutoff, nzl = cutoffs or (0.5, 1.4)
    if nzl < 2:
        d[torch.rand(n, n, generator=g) < 0.2] = nzl  # exactly at the zero-weight cutoff
    _, negative = class_masks(labels)
    if cutoffs is None:  # the public functions' defaults
        probs = distance_weighted_probabilities(d, negative, dim)
        weights = distance_weighted_weights(d, negative, dim)
    else:
        probs = distance_weighted_probabilities(d, negative, dim, cutoff, nzl)
        weights = distance_weighted_weights(d, negative, dim, cutoff, nzl)
    valid = negative & (d < nzl)
    with_valid, with_negative = valid.any(1), negative.any(1)
    with np.errstate(invalid="ignore"):  # 0 / 0 in rows without a valid weight
        ref = reference_probabilities(d.numpy(), labels.numpy(), dim, cutoff, nzl)
    ref[~with_valid.numpy()] = 0.0  # rows without a valid weight: uniform, checked below
    got = probs.clone()
    got[~with_valid] = 0.0
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-9, atol=1e-12)
    total = weights.sum(1, keepdim=True)
    assert torch.allclose(weights[with_negative] / total[with_negative], probs[with_negative])
    assert (weights[valid.logical_not() & with_valid[:, None]] == 0).all()
    assert (weights[with_valid].amax(1) == 1).all()
    fallback = with_negative & ~with_valid
    assert torch.equal(weights[fallback], negative[fallback].double())
    assert (weights[~with_negative] == 0).all() and (probs[~with_negative] == 0).all()
    assert torch.allclose(
        probs[with_negative].sum(1), torch.ones(int(with_negative.sum()), dtype=d.dtype)
    )


def test_antipodal_negative_without_a_loss_cutoff_gets_the_largest_finite_weight():
    """With nonzero_loss_cutoff beyond 2 nothing is cut: d is clipped just below 2, so an
    antipodal negative (where q(d) vanishes) gets the largest weight, finite, not inf or NaN."""
    d = torch.tensor(
        [[0.0, 0.3, 1.0, 2.0], [0.3, 0.0, 1.2, 1.5], [1.0, 1.2, 0.0, 0.7], [2.0, 1.5, 0.7, 0.0]]
    )
    labels = torch.tensor([0, 0, 1, 1])
    _, negative = class_masks(labels)
    probs = distance_weighted_probabilities(d, negative, dim=16, nonzero_loss_cutoff=2.5)
    assert torch.isfinite(probs).all() and torch.allclose(probs.sum(1), torch.ones(4))
    assert probs[0].argmax() == 3 and probs[3].argmax() == 0


def test_sampler_draws_with_its_own_cutoffs(make_batch):
    """TupleSampler's distance weighted negatives follow distance_weighted_probabilities with the
    sampler's cutoff and nonzero_loss_cutoff (here 1.0 and 1.2, not the defaults): no draw where
    the probability is 0, and a chi-square fit over distance bins."""
    x, labels = make_batch(classes=6, per_class=4, dim=4, seed=2, dtype=torch.float64)
    d = pairwise_distance(x)
    _, negative = class_masks(labels)
    probs = distance_weighted_probabilities(d, negative, 4, cutoff=1.0, nonzero_loss_cutoff=1.2)
    sampler = TupleSampler("all", "distance_weighted", cutoff=1.0, nonzero_loss_cutoff=1.2, seed=0)
    counts = torch.zeros_like(d)
    for _ in range(150):
        a, _, n = sampler(x, labels)
        counts.index_put_((a, n), torch.ones(len(a), dtype=d.dtype), accumulate=True)
    assert (counts[probs == 0] == 0).all()
    expected = probs * counts.sum(1, keepdim=True)
    bins = np.quantile(d[probs > 0].numpy(), np.linspace(0, 1, 9))
    bins[0], bins[-1] = 0.0, 2.0
    which = np.digitize(d.numpy(), bins[1:-1])
    observed = np.bincount(which.ravel(), weights=counts.numpy().ravel(), minlength=8)
    wanted = np.bincount(which.ravel(), weights=expected.numpy().ravel(), minlength=8)
    assert stats.chisquare(observed, wanted).pvalue > 1e-3, (observed, wanted)
