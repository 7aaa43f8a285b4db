"""Positive and negative strategies: each picks what its definition says, for every anchor."""

import pytest
import torch

from dml.distances import pairwise_distance
from dml.samplers import Pairs, Triplets, TupleSampler, all_pairs, to_pairs, to_triplets
from dml.samplers.strategies import NEGATIVE_STRATEGIES, POSITIVE_STRATEGIES, draw


def setup(make_batch, **kw):
    x, labels = make_batch(**kw)
    return x, labels, pairwise_distance(x)


def test_easy_positive_is_nearest_same_class(make_batch):
    x, labels, d = setup(make_batch, classes=5, per_class=5, dim=6)
    a, p, n = TupleSampler("easy", "hard", seed=0)(x, labels)
    assert sorted(a.tolist()) == list(range(len(labels)))  # one pair per anchor
    for ai, pi in zip(a.tolist(), p.tolist(), strict=True):
        same = [j for j in range(len(labels)) if j != ai and labels[j] == labels[ai]]
        assert pi == min(same, key=lambda j: d[ai, j].item())


def test_hard_positive_is_farthest_same_class(make_batch):
    x, labels, d = setup(make_batch, classes=5, per_class=5, dim=6)
    a, p, _ = TupleSampler("hard", "random", seed=0)(x, labels)
    for ai, pi in zip(a.tolist(), p.tolist(), strict=True):
        same = [j for j in range(len(labels)) if j != ai and labels[j] == labels[ai]]
        assert pi == max(same, key=lambda j: d[ai, j].item())


def test_hard_negative_is_nearest_other_class(make_batch):
    x, labels, d = setup(make_batch)
    a, p, n = TupleSampler("all", "hard", seed=0)(x, labels)
    assert len(a) == len(labels) * 3  # every positive pair: 24 anchors x 3 positives
    for ai, ni in zip(a.tolist(), n.tolist(), strict=True):
        others = [j for j in range(len(labels)) if labels[j] != labels[ai]]
        assert ni == min(others, key=lambda j: d[ai, j].item())


def test_semihard_inequality_and_fallback(make_batch):
    x, labels, d = setup(make_batch, classes=8, per_class=4, dim=4)
    margin = 0.2
    a, p, n = TupleSampler("all", "semihard", margin=margin, seed=0)(x, labels)
    in_band = fallback = 0
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
        others = [j for j in range(len(labels)) if labels[j] != labels[ai]]
        band = [j for j in others if d[ai, pi] < d[ai, j] < d[ai, pi] + margin]
        if band:
            in_band += 1
            assert d[ai, pi] < d[ai, ni] < d[ai, pi] + margin
            assert ni == min(band, key=lambda j: d[ai, j].item())  # hardest semi-hard
        else:
            fallback += 1
            assert ni == min(others, key=lambda j: d[ai, j].item())
    assert in_band > 0 and fallback > 0  # both branches exercised on this batch


def test_all_negatives_are_every_valid_triplet(make_batch):
    x, labels, _ = setup(make_batch, classes=3, per_class=3)
    tuples = TupleSampler("all", "all")(x, labels)
    assert isinstance(tuples, Pairs)  # compact: every pair once
    a, p, n = to_triplets(tuples)
    got = set(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    want = {
        (i, j, k)
        for i in range(9)
        for j in range(9)
        for k in range(9)
        if i != j and labels[i] == labels[j] and labels[k] != labels[i]
    }
    assert got == want and len(a) == len(want)
    # the same tuples as no sampler at all
    assert all(torch.equal(u, v) for u, v in zip(tuples, all_pairs(labels), strict=True))


def test_one_positive_with_all_negatives(make_batch):
    x, labels, d = setup(make_batch, classes=3, per_class=3)
    pa, p, na, n = TupleSampler("easy", "all")(x, labels)
    assert len(pa) == 9 and len(na) == 9 * 6
    assert set(na.tolist()) == set(pa.tolist()) and (labels[na] != labels[n]).all()


@pytest.mark.parametrize("positive", POSITIVE_STRATEGIES)
@pytest.mark.parametrize("negative", NEGATIVE_STRATEGIES)
def test_every_combination_gives_valid_triplets(make_batch, positive, negative):
    x, labels = make_batch(classes=5, per_class=3, dim=16)
    sampler = TupleSampler(positive, negative, seed=1)
    tuples = sampler(x, labels)
    a, p, n = to_triplets(tuples)
    assert a.dtype == p.dtype == n.dtype == torch.long
    assert len(a) == len(p) == len(n) > 0
    assert (a != p).all() and (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all()
    per_anchor = 2 if positive == "all" else 1
    if negative != "all":
        assert isinstance(tuples, Triplets) and len(a) == len(labels) * per_anchor
    else:
        assert isinstance(tuples, Pairs) and len(a) == len(labels) * per_anchor * 12
    d = pairwise_distance(x)
    pa, pp, na, nn = to_pairs(tuples)
    assert torch.equal(sampler.last_distances["positive"], d[pa, pp])
    assert torch.equal(sampler.last_distances["negative"], d[na, nn])


def test_random_strategies_cover_their_choices(make_batch):
    """Random picks are uniform over valid items: every valid choice shows up over many draws."""
    x, labels = make_batch(classes=3, per_class=3)
    sampler = TupleSampler("random", "random", seed=0)
    seen_p, seen_n = set(), set()
    for _ in range(200):
        a, p, n = sampler(x, labels)
        seen_p |= set(zip(a.tolist(), p.tolist(), strict=True))
        seen_n |= set(zip(a.tolist(), n.tolist(), strict=True))
    assert len(seen_p) == 9 * 2 and len(seen_n) == 9 * 6


def test_draw_follows_weights_and_skips_zeros():
    weights = torch.tensor([[0.0, 1.0, 0.0, 3.0], [0.0, 0.0, 0.0, 1.0], [1e-30, 0.0, 1.0, 0.0]])
    rows = torch.tensor([0, 1, 2]).repeat(20000)
    idx = draw(weights, rows, torch.Generator().manual_seed(0))
    assert (weights[rows, idx] > 0).all()
    row0 = idx[rows == 0]
    assert abs((row0 == 3).float().mean().item() - 0.75) < 0.01
    assert (idx[rows == 1] == 3).all()
    # a mask (bool) works as uniform weights
    mask = torch.tensor([[False, True, True, False]])
    idx = draw(mask, torch.zeros(4000, dtype=torch.long), torch.Generator().manual_seed(1))
    assert set(idx.tolist()) == {1, 2}


def test_one_class_batch_gives_no_triplets(make_batch):
    x, _ = make_batch(classes=2, per_class=4)
    labels = torch.zeros(8, dtype=torch.long)
    for positive in POSITIVE_STRATEGIES:
        for negative in NEGATIVE_STRATEGIES:
            triplets = TupleSampler(positive, negative, seed=0)(x, labels)
            assert all(t.numel() == 0 for t in triplets), (positive, negative)


def test_class_with_one_image_is_negative_only(make_batch):
    x, _ = make_batch(classes=2, per_class=4)
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2])  # image 3 is alone in its class
    for positive in POSITIVE_STRATEGIES:
        for negative in NEGATIVE_STRATEGIES:
            a, p, n = to_triplets(TupleSampler(positive, negative, seed=0)(x, labels))
            assert len(a) > 0 and 3 not in a.tolist() and 3 not in p.tolist()
    pa, p, na, n = TupleSampler("all", "all")(x, labels)
    assert 3 in n.tolist()


def test_easy_positive_config_semantics(make_batch):
    """Levi et al.: easy positive, then the hardest negative farther than it (margin = inf)."""
    x, labels, d = setup(make_batch, classes=6, per_class=4, dim=4)
    a, p, n = TupleSampler("easy", "semihard", margin=float("inf"), seed=0)(x, labels)
    farther = 0
    for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
        others = [j for j in range(len(labels)) if labels[j] != labels[ai]]
        beyond = [j for j in others if d[ai, j] > d[ai, pi]]
        if beyond:
            farther += 1
            assert ni == min(beyond, key=lambda j: d[ai, j].item())
        else:
            assert ni == min(others, key=lambda j: d[ai, j].item())
    assert farther > 0
