"""TupleSampler: arguments, shared distances, seeding and checkpointable RNG state."""

import pytest
import torch

from dml.distances import pairwise_distance
from dml.samplers import Triplets, TupleSampler, to_triplets
from dml.samplers.strategies import select_negatives, select_positives, swap_negatives
from dml.samplers.tuples import class_masks


def test_precomputed_distances_give_the_same_tuples(make_batch):
    x, labels = make_batch(dim=16)
    d = pairwise_distance(x)
    for negative in ("distance_weighted", "semihard", "random"):
        t1 = TupleSampler("all", negative, seed=3)(x, labels)
        t2 = TupleSampler("all", negative, seed=3)(x, labels, d)
        assert all(torch.equal(u, v) for u, v in zip(t1, t2, strict=True))


def test_same_seed_same_tuples_and_different_seed_differs(make_batch):
    x, labels = make_batch(classes=8, per_class=4, dim=16)
    runs = [TupleSampler("random", "distance_weighted", seed=s)(x, labels) for s in (7, 7, 8)]
    assert all(torch.equal(u, v) for u, v in zip(runs[0], runs[1], strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(runs[0], runs[2], strict=True))


def test_unseeded_sampler_follows_torch_global_seed(make_batch):
    x, labels = make_batch(classes=8, per_class=4, dim=16)
    torch.manual_seed(123)
    t1 = TupleSampler("random", "random")(x, labels)
    torch.manual_seed(123)
    t2 = TupleSampler("random", "random")(x, labels)
    assert all(torch.equal(u, v) for u, v in zip(t1, t2, strict=True))


def test_state_dict_resumes_the_stream(make_batch):
    x, labels = make_batch(classes=8, per_class=4, dim=16)
    sampler = TupleSampler("all", "distance_weighted", seed=0)
    sampler(x, labels)
    state = sampler.state_dict()
    expected = sampler(x, labels)
    resumed = TupleSampler("all", "distance_weighted", seed=99)
    resumed.load_state_dict(state)
    got = resumed(x, labels)
    assert all(torch.equal(u, v) for u, v in zip(expected, got, strict=True))


def test_bad_arguments_name_the_option(make_batch):
    with pytest.raises(ValueError, match="sampler.positive='nope'.*easy"):
        TupleSampler(positive="nope")
    with pytest.raises(ValueError, match="sampler.negative='hardest'.*semihard"):
        TupleSampler(negative="hardest")
    with pytest.raises(ValueError, match="sampler.margin"):
        TupleSampler(negative="semihard", margin=-1)
    with pytest.raises(ValueError, match="cutoff"):
        TupleSampler(cutoff=1.5, nonzero_loss_cutoff=1.4)
    with pytest.raises(ValueError, match="need 0 < sampler.cutoff < sampler.nonzero_loss_cutoff"):
        TupleSampler(cutoff=1.4, nonzero_loss_cutoff=1.4)  # every valid weight would be equal
    with pytest.raises(TypeError, match="seed must be an int or None, got 1.5"):
        TupleSampler(seed=1.5)
    x, labels = make_batch()
    sampler = TupleSampler()
    with pytest.raises(ValueError, match="labels must be a 1-D tensor of length 24"):
        sampler(x, labels[:-1])
    with pytest.raises(ValueError, match=r"distances must be the \[24, 24\]"):
        sampler(x, labels, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"embeddings must be \[B, D\]"):
        sampler(x[0], labels)


@pytest.mark.parametrize("cutoff", [0.0, -0.5])
def test_cutoff_must_be_positive(cutoff):
    """q(d)^-1 diverges at d = 0: with cutoff 0 a cross-class duplicate (d = 0, as in a collapsed
    embedding) made every weight of its row NaN, and the sampler returned index B, outside the
    batch. A non-positive cutoff is refused with the option's name."""
    with pytest.raises(
        ValueError, match=f"sampler.cutoff={cutoff} is not valid: expected a positive"
    ):
        TupleSampler("all", "distance_weighted", cutoff=cutoff)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_embeddings(make_batch, dtype):
    x, labels = make_batch(classes=6, per_class=4, dim=32)
    for negative in ("distance_weighted", "semihard", "hard"):
        sampler = TupleSampler("all", negative, seed=0)
        a, p, n = sampler(x.to(dtype), labels)
        assert len(a) == 72 and (labels[a] != labels[n]).all()
        assert torch.isfinite(sampler.last_distances["negative"]).all()


def test_references_beyond_the_batch(make_batch):
    """sample() with ref_labels: anchors are the batch rows, candidates the batch then extra items."""
    x, labels = make_batch(classes=4, per_class=3, dim=8)
    extra, extra_labels = make_batch(classes=4, per_class=2, dim=8, seed=5)
    ref, ref_labels = torch.cat([x, extra]), torch.cat([labels, extra_labels])
    d = pairwise_distance(x, ref)
    for negative in ("all", "hard", "semihard", "distance_weighted", "random"):
        sampler = TupleSampler("all", negative, seed=0)
        a, p, n = to_triplets(sampler.sample(d, labels, 8, ref_labels=ref_labels))
        assert (a < 12).all() and (a != p).all()
        assert (labels[a] == ref_labels[p]).all() and (labels[a] != ref_labels[n]).all()
        assert len(set(zip(a.tolist(), p.tolist(), strict=True))) == 12 * (2 + 2)
        assert (p >= 12).any()  # extra items serve as positives too
    # with the batch as its own reference, sample() is the plain call
    square = TupleSampler("all", "distance_weighted", seed=1).sample(
        pairwise_distance(x), labels, 8, ref_labels=labels
    )
    plain = TupleSampler("all", "distance_weighted", seed=1)(x, labels)
    assert all(torch.equal(u, v) for u, v in zip(square, plain, strict=True))


def _same_class_share(tuples, labels) -> float:
    a, n = (tuples[0], tuples[2]) if len(tuples) == 3 else (tuples[2], tuples[3])
    return (labels[a] == labels[n]).float().mean().item()


@pytest.mark.parametrize("negative", ["distance_weighted", "semihard", "random", "all"])
def test_rho_swaps_that_share_of_negatives_for_positives(make_batch, negative):
    # Roth et al. 2020: with probability rho a negative becomes a same-class item of its anchor
    x, labels = make_batch(classes=8, per_class=8, dim=16)
    plain = TupleSampler("all", negative, seed=0)(x, labels)
    assert _same_class_share(plain, labels) == 0.0
    swapped = TupleSampler("all", negative, seed=0, rho=0.3)(x, labels)
    share = _same_class_share(swapped, labels)
    n = len(swapped[0] if len(swapped) == 3 else swapped[2])
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5, (share, n)
    a, neg = (swapped[0], swapped[2]) if len(swapped) == 3 else (swapped[2], swapped[3])
    assert not (a == neg).any()  # a swapped negative is another item, never the anchor itself
    assert torch.equal(swapped[0], plain[0]) and torch.equal(swapped[1], plain[1])


def test_rho_one_makes_every_negative_a_positive_and_rho_is_checked(make_batch):
    x, labels = make_batch(classes=4, per_class=3, dim=8)
    a, p, n = TupleSampler("all", "distance_weighted", seed=1, rho=1.0)(x, labels)
    assert torch.equal(labels[a], labels[n])
    with pytest.raises(ValueError, match="sampler.rho=1.5"):
        TupleSampler("all", "random", rho=1.5)
    assert "rho=0.3" in repr(TupleSampler("all", "random", rho=0.3))


def test_rho_leaves_anchors_without_positives_alone():
    # a class of one item has no positive: its anchor yields no triplet, and in the Pairs of
    # negative="all" its negative pairs (as a negative anchor) cannot be swapped
    x = torch.nn.functional.normalize(
        torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), dim=1
    )
    labels = torch.tensor([0, 0, 1, 1, 2])
    pa, p, na, n = TupleSampler("all", "all", seed=0, rho=1.0)(x, labels)
    assert (labels[na] == labels[n]).all()
    assert not (na == 4).any()


def test_swap_negatives_swaps_exactly_the_anchors_with_a_positive():
    """swap_negatives itself (rho = 1): each negative of an anchor with a positive becomes one of
    its positives, also when there is a single tuple; an anchor without a positive keeps its
    negative; rho = 0 changes nothing."""
    labels = torch.tensor([0, 0, 1, 2])  # items 2 and 3 have no positive
    positive_mask, _ = class_masks(labels)
    gen = torch.Generator().manual_seed(0)
    one = swap_negatives(
        Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2])), positive_mask, 1.0, gen
    )
    assert one.negative.tolist() == [1]
    kept = swap_negatives(
        Triplets(torch.tensor([0, 2, 3]), torch.tensor([1, 0, 0]), torch.tensor([3, 1, 2])),
        positive_mask,
        1.0,
        gen,
    )
    assert kept.negative.tolist() == [1, 1, 2]
    # rho = 0 (off) leaves the tuples and the random stream alone, so that runs without rho
    # draw the same tuples as before rho existed
    state = gen.get_state()
    unchanged = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    assert swap_negatives(unchanged, positive_mask, 0.0, gen).negative.tolist() == [2]
    assert torch.equal(gen.get_state(), state)


def test_defaults_are_the_published_values():
    """FaceNet's margin 0.2, Wu et al.'s cutoff 0.5 and 1.4, no rho: dml-reproduce's W1 analysis
    (dml/reproduce/negatives.py) builds its samplers with these defaults."""
    s = TupleSampler()
    assert (s.margin, s.cutoff, s.nonzero_loss_cutoff, s.rho) == (0.2, 0.5, 1.4, 0.0)


def test_fresh_sampler_and_unseeded_seeds():
    """Before its first call a sampler has no tuple distances to report; unseeded samplers draw
    their seed from torch's global RNG over a wide range, so runs with different global seeds
    do not share a sampler stream."""
    assert TupleSampler().last_distances == {}
    seeds = set()
    for global_seed in range(40):
        torch.manual_seed(global_seed)
        sampler = TupleSampler("random", "random")
        sampler.generator(torch.device("cpu"))
        seeds.add(sampler.seed)
    assert len(seeds) == 40


def test_unknown_strategy_of_the_selection_functions_names_the_choices(make_batch):
    """select_positives / select_negatives called directly (TupleSampler checks its arguments
    first) refuse an unknown strategy with the list of valid ones."""
    x, labels = make_batch(classes=2, per_class=2)
    d = pairwise_distance(x)
    positive_mask, negative_mask = class_masks(labels)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="unknown positive strategy 'nope'.*easy"):
        select_positives("nope", d, positive_mask, gen)
    a, p = select_positives("all", d, positive_mask, gen)
    with pytest.raises(ValueError, match="unknown negative strategy 'nope'.*semihard"):
        select_negatives("nope", d, negative_mask, a, p, gen, dim=8)
