"""Properties every tuple sampler keeps on any batch (hypothesis draws batches and seeds).

Never a same-class negative, never an item as its own positive, every anchor that has a
positive and a negative gets a tuple (one per anchor for the single-positive strategies, every
positive for "all"), the chosen easy/hard/semihard items are the extreme ones, and a seeded
sampler (or one restored from its state_dict) draws the same tuples.
"""

from __future__ import annotations

from fractions import Fraction

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dml.distances import pairwise_distance
from dml.samplers import MultiSimilaritySampler, Pairs, Triplets, TupleSampler, to_triplets
from dml.samplers.strategies import NEGATIVE_STRATEGIES, POSITIVE_STRATEGIES

PROPERTY = settings(max_examples=30, deadline=None)


@st.composite
def batches(draw):
    """Embeddings [B, D] on the sphere and labels [B] with 1..5 classes (singletons allowed)."""
    labels = draw(st.lists(st.integers(0, 4), min_size=2, max_size=24))
    dim = draw(st.integers(2, 8))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.nn.functional.normalize(torch.randn(len(labels), dim, generator=g), dim=1)
    return x, torch.tensor(labels)


def anchors_with_positive_and_negative(labels):
    same = labels[:, None] == labels[None, :]
    has_pos = (same.sum(1) - 1) > 0
    has_neg = (~same).any(1)
    return set(torch.nonzero(has_pos & has_neg).flatten().tolist())


@PROPERTY
@given(
    batch=batches(),
    positive=st.sampled_from(POSITIVE_STRATEGIES),
    negative=st.sampled_from(NEGATIVE_STRATEGIES),
    seed=st.integers(0, 2**31 - 1),
)
def test_tuples_are_valid_and_every_eligible_anchor_gets_one(batch, positive, negative, seed):
    x, labels = batch
    tuples = TupleSampler(positive, negative, seed=seed)(x, labels)
    triplets = to_triplets(tuples)
    a, p, n = triplets
    assert (labels[a] == labels[p]).all() and (a != p).all()
    assert (labels[a] != labels[n]).all()  # never a same-class negative
    if isinstance(tuples, Pairs):  # negative="all": every negative pair of the chosen anchors
        pa, _, na, nn = tuples
        assert (labels[na] != labels[nn]).all()
        expected = {(i, j) for i in set(pa.tolist()) for j in range(len(labels))}
        expected = {(i, j) for i, j in expected if labels[i] != labels[j]}
        assert set(zip(na.tolist(), nn.tolist(), strict=True)) == expected
    eligible = anchors_with_positive_and_negative(labels)
    assert set(a.tolist()) == eligible
    pos_anchor = tuples.pos_anchor if isinstance(tuples, Pairs) else tuples.anchor
    positives = list(zip(pos_anchor.tolist(), tuples.positive.tolist(), strict=True))
    if positive == "all":
        same = labels[:, None] == labels[None, :]
        assert sorted(positives) == sorted(
            (i, j) for i in eligible for j in range(len(labels)) if same[i, j] and i != j
        )
    else:
        assert sorted(i for i, _ in positives) == sorted(eligible)  # exactly one each


@PROPERTY
@given(batch=batches(), margin=st.sampled_from([0.0, 0.1, 0.5, 4.0]))
def test_easy_hard_and_semihard_pick_the_extreme_items(batch, margin):
    x, labels = batch
    d = pairwise_distance(x)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    for strategy, pick in (("easy", torch.min), ("hard", torch.max)):
        a, p, _ = TupleSampler(strategy, "hard", seed=0)(x, labels)
        for i, j in zip(a.tolist(), p.tolist(), strict=True):
            assert d[i, j] == pick(d[i][pos[i]])
    a, p, n = TupleSampler("easy", "hard", seed=0)(x, labels)
    for i, k in zip(a.tolist(), n.tolist(), strict=True):
        assert d[i, k] == d[i][~same[i]].min()
    a, p, n = TupleSampler("all", "semihard", margin=margin, seed=0)(x, labels)
    for i, j, k in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
        band = ~same[i] & (d[i] > d[i, j]) & (d[i] < d[i, j] + margin)
        expected = d[i][band].min() if band.any() else d[i][~same[i]].min()
        assert d[i, k] == expected


@PROPERTY
@given(
    batch=batches(),
    positive=st.sampled_from(["random", "easy"]),
    negative=st.sampled_from(["random", "distance_weighted", "semihard"]),
    seed=st.integers(0, 2**31 - 1),
    rho=st.sampled_from([0.0, 0.3]),
)
def test_seeded_and_restored_samplers_draw_the_same_tuples(batch, positive, negative, seed, rho):
    x, labels = batch
    first, second = (TupleSampler(positive, negative, seed=seed, rho=rho) for _ in range(2))
    for _ in range(2):
        assert all(
            torch.equal(u, v) for u, v in zip(first(x, labels), second(x, labels), strict=True)
        )
    state = first.state_dict()
    expected = first(x, labels)
    restored = TupleSampler(positive, negative, seed=seed + 1, rho=rho)
    restored.load_state_dict(state)
    assert restored.seed == seed
    assert all(torch.equal(u, v) for u, v in zip(restored(x, labels), expected, strict=True))


@PROPERTY
@given(batch=batches(), seed=st.integers(0, 2**31 - 1))
def test_rho_one_swaps_every_negative_of_an_anchor_with_a_positive(batch, seed):
    x, labels = batch
    a, p, n = TupleSampler("easy", "random", seed=seed, rho=1.0)(x, labels)
    assert (labels[n] == labels[a]).all() and (n != a).all()


@PROPERTY
@given(batch=batches(), epsilon=st.sampled_from([0.0, 0.1, 0.5]))
def test_multi_similarity_keeps_exactly_the_informative_pairs(batch, epsilon):
    x, labels = batch
    pa, p, na, n = MultiSimilaritySampler(epsilon=epsilon)(x, labels)
    sim = x @ x.T
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    kept_pos, kept_neg = (
        set(zip(pa.tolist(), p.tolist(), strict=True)),
        set(zip(na.tolist(), n.tolist(), strict=True)),
    )
    tol = 1e-5  # similarity from distance vs the dot product
    for i in range(len(labels)):
        hardest_pos = sim[i][pos[i]].min() if pos[i].any() else torch.tensor(float("inf"))
        hardest_neg = sim[i][~same[i]].max() if (~same[i]).any() else torch.tensor(float("-inf"))
        for j in range(len(labels)):
            if pos[i, j] and abs(sim[i, j] - epsilon - hardest_neg) > tol:
                assert ((i, j) in kept_pos) == bool(sim[i, j] - epsilon < hardest_neg)
            if not same[i, j] and abs(sim[i, j] + epsilon - hardest_pos) > tol:
                assert ((i, j) in kept_neg) == bool(sim[i, j] + epsilon > hardest_pos)
            if same[i, j]:
                assert (i, j) not in kept_neg
            if not pos[i, j]:
                assert (i, j) not in kept_pos


def test_triplets_type_for_single_negative_strategies():
    x = torch.nn.functional.normalize(
        torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), dim=1
    )
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for negative in NEGATIVE_STRATEGIES:
        out = TupleSampler("all", negative, seed=0)(x, labels)
        assert isinstance(out, Pairs if negative == "all" else Triplets)


def test_semihard_band_is_strict_at_the_positive_distance():
    # anchor 0: positive 1 at 0.5; negative 2 ties the positive (not semihard), 3 is in the band
    d = torch.tensor(
        [
            [0.0, 0.5, 0.5, 0.6, 1.5],
            [0.5, 0.0, 1.0, 1.0, 1.0],
            [0.5, 1.0, 0.0, 1.0, 1.0],
            [0.6, 1.0, 1.0, 0.0, 1.0],
            [1.5, 1.0, 1.0, 1.0, 0.0],
        ]
    )
    labels = torch.tensor([0, 0, 1, 2, 3])
    x = torch.zeros(5, 3)
    a, p, n = TupleSampler("all", "semihard", margin=0.2, seed=0)(x, labels, distances=d)
    assert (a.tolist(), p.tolist(), n.tolist()) == ([0, 1], [1, 0], [3, 2])


@st.composite
def grid_distances(draw, step: Fraction, steps: int):
    """Labels [B] and a symmetric distance matrix [B, B] (zero diagonal) whose entries are
    multiples of `step` up to steps * step: exact in float32, so that ties with a threshold
    (a similarity plus epsilon, a distance plus a margin) happen often and exactly."""
    labels = draw(st.lists(st.integers(0, 2), min_size=2, max_size=8))
    b = len(labels)
    upper = draw(st.lists(st.integers(0, steps), min_size=b * b, max_size=b * b))
    d = [[Fraction(0)] * b for _ in range(b)]
    for i in range(b):
        for j in range(i + 1, b):
            d[i][j] = d[j][i] = upper[i * b + j] * step
    return torch.tensor(labels), d


@PROPERTY
@given(case=grid_distances(Fraction(1, 2), 4), eps_8ths=st.integers(0, 8))
def test_multi_similarity_rule_is_strict_at_its_thresholds(case, eps_8ths):
    """Wang et al.'s rule with exact ties: a negative is kept iff S_an + eps > min_p S_ap, a
    positive iff S_ap - eps < max_n S_an (strict), with S = 1 - d^2 / 2, in exact arithmetic."""
    labels, d = case
    epsilon = Fraction(eps_8ths, 8)
    sampler = MultiSimilaritySampler(epsilon=float(epsilon))
    distances = torch.tensor([[float(v) for v in row] for row in d])
    pa, p, na, n = sampler.sample(distances, labels, dim=2)
    b = len(labels)
    sim = [[1 - v * v / 2 for v in row] for row in d]
    want_pos, want_neg = set(), set()
    for i in range(b):
        pos = [j for j in range(b) if j != i and labels[j] == labels[i]]
        neg = [j for j in range(b) if labels[j] != labels[i]]
        if neg:
            want_pos |= {(i, j) for j in pos if sim[i][j] - epsilon < max(sim[i][k] for k in neg)}
        if pos:
            want_neg |= {(i, k) for k in neg if sim[i][k] + epsilon > min(sim[i][j] for j in pos)}
    assert set(zip(pa.tolist(), p.tolist(), strict=True)) == want_pos
    assert set(zip(na.tolist(), n.tolist(), strict=True)) == want_neg


@PROPERTY
@given(case=grid_distances(Fraction(1, 4), 8), margin_4ths=st.integers(0, 4))
def test_semihard_band_is_open_at_both_ends(case, margin_4ths):
    """FaceNet's band d_ap < d_an < d_ap + margin with exact ties at both ends: the negative is
    the nearest one inside the open band, else the nearest negative of the anchor."""
    labels, d = case
    margin = Fraction(margin_4ths, 4)
    distances = torch.tensor([[float(v) for v in row] for row in d])
    sampler = TupleSampler("all", "semihard", margin=float(margin), seed=0)
    a, p, n = sampler.sample(distances, labels, dim=2)
    eligible = anchors_with_positive_and_negative(labels)
    assert set(a.tolist()) == eligible
    for i, j, k in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
        neg = [m for m in range(len(labels)) if labels[m] != labels[i]]
        band = [d[i][m] for m in neg if d[i][j] < d[i][m] < d[i][j] + margin]
        assert labels[k] != labels[i]
        assert d[i][k] == (min(band) if band else min(d[i][m] for m in neg))
