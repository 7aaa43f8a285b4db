"""Triplets/Pairs, every valid tuple of a batch, and the conversion both ways."""

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dml.samplers import Pairs, Triplets, all_pairs, all_triplets, to_pairs, to_triplets
from dml.samplers.tuples import check_tuples


def brute_triplets(labels):
    out = set()
    for a in range(len(labels)):
        for p in range(len(labels)):
            for n in range(len(labels)):
                if p != a and labels[p] == labels[a] and labels[n] != labels[a]:
                    out.add((a, p, n))
    return out


def as_set(triplets):
    return set(zip(*(t.tolist() for t in triplets), strict=True))


def test_all_pairs_and_triplets_match_brute_force():
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])  # class 2 and 3 have one image each
    pa, p, na, n = all_pairs(labels)
    assert set(zip(pa.tolist(), p.tolist(), strict=True)) == {
        (a, q) for a in range(7) for q in range(7) if a != q and labels[a] == labels[q]
    }
    assert set(zip(na.tolist(), n.tolist(), strict=True)) == {
        (a, q) for a in range(7) for q in range(7) if labels[a] != labels[q]
    }
    triplets = all_triplets(labels)
    assert isinstance(triplets, Triplets)
    assert len(triplets.anchor) == len(brute_triplets(labels.tolist()))
    assert as_set(triplets) == brute_triplets(labels.tolist())


def test_one_class_gives_no_triplet():
    triplets = all_triplets(torch.zeros(5, dtype=torch.long))
    assert all(t.numel() == 0 for t in triplets)


def test_pairs_to_triplets_shares_anchor():
    # anchor 0: positives {1, 2}, negatives {5}; anchor 3: positive {4}, negatives {5, 6, 6}
    pairs = Pairs(
        torch.tensor([3, 0, 0]),
        torch.tensor([4, 1, 2]),
        torch.tensor([3, 0, 3, 3]),
        torch.tensor([5, 5, 6, 6]),
    )
    a, p, n = to_triplets(pairs)
    got = sorted(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    assert got == [(0, 1, 5), (0, 2, 5), (3, 4, 5), (3, 4, 6), (3, 4, 6)]


def test_pairs_without_matching_anchor_give_no_triplet():
    pairs = Pairs(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), torch.tensor([3]))
    assert all(t.numel() == 0 for t in to_triplets(pairs))


def test_triplets_to_pairs_keeps_each_term():
    t = Triplets(torch.tensor([0, 0, 1]), torch.tensor([1, 1, 0]), torch.tensor([2, 3, 2]))
    pairs = to_pairs(t)
    assert isinstance(pairs, Pairs)
    assert pairs.pos_anchor.tolist() == [0, 0, 1] and pairs.positive.tolist() == [1, 1, 0]
    assert pairs.neg_anchor.tolist() == [0, 0, 1] and pairs.negative.tolist() == [2, 3, 2]
    assert to_pairs(pairs) is pairs
    # back to triplets: each positive pair with each negative pair of its anchor (anchor 0 has
    # positives 1, 1 and negatives 2, 3; anchor 1 positive 0 and negative 2)
    back = to_triplets(pairs)
    assert isinstance(back, Triplets)
    assert sorted(zip(*(x.tolist() for x in back), strict=True)) == [
        (0, 1, 2),
        (0, 1, 2),
        (0, 1, 3),
        (0, 1, 3),
        (1, 0, 2),
    ]
    # plain tuples (e.g. from a pytorch-metric-learning miner) are accepted too
    assert isinstance(to_pairs(tuple(t)), Pairs)
    assert isinstance(to_triplets(tuple(pairs)), Triplets)


def test_round_trip_of_all_triplets():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    triplets = all_triplets(labels)
    assert as_set(to_triplets(to_pairs(triplets))) == as_set(triplets)


def test_check_tuples_errors():
    with pytest.raises(ValueError, match="unequal lengths"):
        check_tuples(Triplets(torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([3])), 4)
    # plain tuples (a pytorch-metric-learning miner's, a user's) get their index range checked
    with pytest.raises(ValueError, match="outside the batch of 4"):
        check_tuples((torch.tensor([0]), torch.tensor([1]), torch.tensor([4])), 4)
    with pytest.raises(ValueError, match="outside"):
        check_tuples((torch.tensor([-1]),) * 4, 4)
    with pytest.raises(ValueError, match="unequal lengths"):
        check_tuples(
            Pairs(torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([]), torch.tensor([])), 4
        )
    with pytest.raises(TypeError, match="Triplets or Pairs"):
        to_pairs([1, 2])
    # only tuples are index tuples: a list of four tensors is refused and named
    with pytest.raises(TypeError, match="got list"):
        to_pairs([torch.tensor([0])] * 4)
    # the error names the tensor whose length differs (a NamedTuple's fields, else positions)
    with pytest.raises(ValueError, match="'positive': 2"):
        check_tuples(Triplets(torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([3])), 4)
    with pytest.raises(ValueError, match="'1': 2"):
        check_tuples((torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([3])), 4)
    with pytest.raises(ValueError, match="'negative': 2"):
        check_tuples(
            Pairs(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), torch.tensor([2, 3])), 4
        )
    with pytest.raises(ValueError, match="unequal lengths"):
        check_tuples(
            (torch.tensor([0]), torch.tensor([1]), torch.tensor([0, 1]), torch.tensor([2])), 4
        )


def test_check_tuples_accepts_every_valid_tuple():
    """Valid tuples pass, whatever their lengths: a miner's plain tuples with indices from 0 to
    B - 1, Pairs with more negative than positive pairs, and an empty result (a batch in which a
    miner found nothing)."""
    t = torch.tensor
    check_tuples((t([0, 3, 1]), t([1, 2, 3]), t([2, 0, 0])), 4)
    check_tuples((t([0, 3]), t([1, 2]), t([0, 0, 3]), t([2, 3, 0])), 4)
    check_tuples(Pairs(t([0, 3]), t([1, 2]), t([0, 0, 3]), t([2, 3, 0])), 4)
    empty = torch.empty(0, dtype=torch.long)
    check_tuples((empty, empty, empty), 4)
    check_tuples((empty, empty, empty, empty), 4)


index_pairs = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=12)


@settings(max_examples=40, deadline=None)
@given(positive_pairs=index_pairs, negative_pairs=index_pairs)
def test_pairs_to_triplets_is_every_combination_of_a_shared_anchor(positive_pairs, negative_pairs):
    """Any Pairs (repeats, anchors with only positive or only negative pairs, the largest index
    on either side): to_triplets gives each positive pair once with each negative pair of its
    anchor, as a multiset."""
    pa, p = (
        torch.tensor([x for x, _ in positive_pairs], dtype=torch.long),
        torch.tensor([y for _, y in positive_pairs], dtype=torch.long),
    )
    na, n = (
        torch.tensor([x for x, _ in negative_pairs], dtype=torch.long),
        torch.tensor([y for _, y in negative_pairs], dtype=torch.long),
    )
    a, q, m = to_triplets(Pairs(pa, p, na, n))
    assert a.dtype == q.dtype == m.dtype == torch.long
    got = Counter(zip(a.tolist(), q.tolist(), m.tolist(), strict=True))
    want = Counter((x, y, z) for x, y in positive_pairs for w, z in negative_pairs if w == x)
    assert got == want
