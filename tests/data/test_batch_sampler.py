"""Properties of the class-balanced batch sampler: shape, coverage, ranks, reproducibility, resume."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dml.data.batch_sampler import ClassBalancedBatchSampler


def _labels(sizes):
    """Labels with len(sizes) classes, shuffled so that class order != dataset order."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    return np.random.default_rng(1).permutation(labels)


SIZES = [1, 2, 3, 4, 5, 7, 9, 12, 20, 31, 4, 4]


@pytest.mark.parametrize("p,m", [(3, 4), (4, 2), (2, 5), (12, 1)])
def test_batches_are_p_classes_by_m_images(p, m):
    labels = _labels(SIZES)
    sampler = ClassBalancedBatchSampler(labels, p, m, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert len(batch) == p * m
        counts = Counter(labels[batch].tolist())
        assert len(counts) == p, counts
        assert set(counts.values()) == {m}


@pytest.mark.parametrize("p,m", [(3, 4), (4, 2), (2, 5)])
def test_every_image_visited_each_epoch(p, m):
    labels = _labels(SIZES)
    sampler = ClassBalancedBatchSampler(labels, p, m, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        seen = {i for batch in sampler for i in batch}
        assert seen == set(range(len(labels)))


def test_small_classes_sampled_with_replacement_and_no_repeats_in_big_class_chunks():
    labels = _labels([1, 2, 10, 10])
    sampler = ClassBalancedBatchSampler(labels, 2, 4, seed=0)
    for batch in sampler:
        for c, idx in _group(labels, batch).items():
            if c >= 2:  # classes with >= M images never repeat an image within a chunk
                assert len(set(idx)) == len(idx)


def _group(labels, batch):
    out = {}
    for i in batch:
        out.setdefault(int(labels[i]), []).append(i)
    return out


def test_large_class_sets_the_epoch_length():
    labels = _labels([40, 2, 2, 2])
    sampler = ClassBalancedBatchSampler(labels, 2, 2, seed=0)
    assert len(sampler) == 20  # the big class has 20 chunks, one per batch
    assert {i for b in sampler for i in b} == set(range(len(labels)))


def test_reproducible_for_seed_and_epoch_and_different_otherwise():
    labels = _labels(SIZES)
    a = ClassBalancedBatchSampler(labels, 3, 2, seed=7)
    b = ClassBalancedBatchSampler(labels, 3, 2, seed=7)
    assert list(a) == list(b)
    a.set_epoch(5)
    b.set_epoch(5)
    e5 = list(a)
    assert e5 == list(b)
    a.set_epoch(0)
    assert list(a) != e5
    c = ClassBalancedBatchSampler(labels, 3, 2, seed=8)
    c.set_epoch(5)
    assert list(c) != e5


def test_epoch_advances_after_a_full_pass():
    labels = _labels(SIZES)
    sampler = ClassBalancedBatchSampler(labels, 3, 2, seed=0)
    first, second = list(sampler), list(sampler)
    assert first != second
    assert second == sampler.plan(1)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_get_disjoint_shares_of_equal_length(world):
    labels = _labels(SIZES)
    samplers = [
        ClassBalancedBatchSampler(labels, 3, 2, seed=1, num_replicas=world, rank=r)
        for r in range(world)
    ]
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1
    assert all(len(b) == len(s) for b, s in zip(per_rank, samplers, strict=True))
    # the ranks' shares are disjoint slices of one epoch plan that covers every image
    plan = samplers[0].plan(0)
    assert sorted(map(tuple, (b for bs in per_rank for b in bs))) == sorted(map(tuple, plan))
    assert {i for bs in per_rank for b in bs for i in b} == set(range(len(labels)))


def test_ranks_disjoint_images_when_no_padding_needed():
    labels = np.repeat(np.arange(8), 4)  # 8 classes x 4 = 8 chunks of 4 -> 4 batches of 2 classes
    shares = [
        {i for b in ClassBalancedBatchSampler(labels, 2, 4, num_replicas=2, rank=r) for i in b}
        for r in range(2)
    ]
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] == set(range(32))


def test_state_dict_resumes_where_it_stopped():
    labels = _labels(SIZES)
    sampler = ClassBalancedBatchSampler(labels, 3, 2, seed=4)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2)
    it = iter(sampler)
    taken = [next(it) for _ in range(3)]
    state = sampler.state_dict()
    assert state == {"epoch": 2, "position": 3, "seed": 4}

    resumed = ClassBalancedBatchSampler(labels, 3, 2, seed=4)
    resumed.load_state_dict(state)
    assert taken + list(resumed) == full
    assert resumed.epoch == 3  # the next pass is a fresh epoch from its start
    assert list(resumed) == resumed.plan(3)


def test_load_state_dict_rejects_other_seed_and_bad_position():
    sampler = ClassBalancedBatchSampler(_labels(SIZES), 3, 2, seed=4)
    with pytest.raises(ValueError, match="seed"):
        sampler.load_state_dict({"epoch": 0, "position": 0, "seed": 5})
    with pytest.raises(ValueError, match="position"):
        sampler.load_state_dict({"epoch": 0, "position": 10_000, "seed": 4})


def test_clear_errors():
    labels = _labels(SIZES)
    with pytest.raises(ValueError, match="m_per_class"):
        ClassBalancedBatchSampler(labels, 3, 0)
    with pytest.raises(ValueError, match="only 12 classes"):
        ClassBalancedBatchSampler(labels, 13, 2)
    with pytest.raises(ValueError, match="classes_per_batch"):
        ClassBalancedBatchSampler(labels, 0, 2)
    with pytest.raises(ValueError, match="non-empty"):
        ClassBalancedBatchSampler([], 1, 2)
    with pytest.raises(ValueError, match=r"1-D sequence of class labels, got shape \(6, 1\)"):
        ClassBalancedBatchSampler(np.zeros((6, 1)), 1, 2)
    with pytest.raises(ValueError, match="rank"):
        ClassBalancedBatchSampler(labels, 3, 2, num_replicas=2, rank=2)


def test_works_as_dataloader_batch_sampler():
    torch = pytest.importorskip("torch")
    labels = _labels(SIZES)
    data = torch.utils.data.TensorDataset(torch.arange(len(labels)), torch.as_tensor(labels))
    sampler = ClassBalancedBatchSampler(labels, 3, 2)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == len(sampler)
    assert all(b[0].shape == (6,) for b in batches)


# ---- properties (hypothesis) and guards found missing by mutation testing ---------------------
PROPERTY = settings(max_examples=25, deadline=None)


@st.composite
def sampler_setups(draw):
    """Class sizes, P, M, seed, epoch and world size of a valid sampler."""
    sizes = draw(st.lists(st.integers(1, 9), min_size=2, max_size=7))
    p = draw(st.integers(1, len(sizes)))
    m = draw(st.integers(1, 4))
    return (
        sizes,
        p,
        m,
        draw(st.integers(0, 2**16)),
        draw(st.integers(0, 5)),
        draw(st.sampled_from([1, 2, 3])),
    )


@PROPERTY
@given(setup=sampler_setups(), data=st.data())
def test_any_stop_and_resume_point_gives_the_same_remaining_batches(setup, data):
    sizes, p, m, seed, epoch, world = setup
    labels = _labels(sizes)
    rank = data.draw(st.integers(0, world - 1))

    def make():
        return ClassBalancedBatchSampler(labels, p, m, seed, num_replicas=world, rank=rank)

    sampler = make()
    sampler.set_epoch(epoch)
    full = list(sampler)
    assert len(full) == len(sampler)
    stop = data.draw(st.integers(0, len(full)))
    sampler.set_epoch(epoch)
    it = iter(sampler)
    taken = [next(it) for _ in range(stop)]
    state = sampler.state_dict()
    assert state == {"epoch": epoch, "position": stop, "seed": seed}
    resumed = make()
    resumed.load_state_dict(state)
    resumed.set_epoch(epoch)  # Lightning calls set_epoch with the resumed epoch: no reset
    assert taken + list(resumed) == full
    assert resumed.state_dict() == {"epoch": epoch + 1, "position": 0, "seed": seed}


@PROPERTY
@given(setup=sampler_setups())
def test_every_batch_is_p_classes_of_m_and_every_image_is_seen(setup):
    sizes, p, m, seed, epoch, _ = setup
    labels = _labels(sizes)
    sampler = ClassBalancedBatchSampler(labels, p, m, seed)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    chunks = -(-np.array(sizes) // m)
    assert len(batches) == max(-(-chunks.sum() // p), chunks.max())
    for batch in batches:
        counts = Counter(labels[batch].tolist())
        assert len(counts) == p and set(counts.values()) == {m}
        for c, idx in _group(labels, batch).items():
            if sizes[c] >= m:  # a class with M images or more repeats none within a batch
                assert len(set(idx)) == m
    assert {i for b in batches for i in b} == set(range(len(labels)))


def test_set_epoch_keeps_the_resume_point_of_that_epoch_and_drops_it_for_another():
    labels = _labels(SIZES)
    sampler = ClassBalancedBatchSampler(labels, 3, 2, seed=4)
    plan = sampler.plan(2)
    sampler.load_state_dict({"epoch": 2, "position": 3, "seed": 4})
    sampler.set_epoch(2)
    assert list(sampler) == plan[3:]
    sampler.load_state_dict({"epoch": 2, "position": 3, "seed": 4})
    sampler.set_epoch(4)  # another epoch: from its first batch
    assert list(sampler) == sampler.plan(4)
    assert sampler.epoch == 5


def test_load_state_dict_accepts_the_end_of_an_epoch_and_a_state_without_seed():
    labels = _labels(SIZES)
    sampler = ClassBalancedBatchSampler(labels, 3, 2, seed=4)
    sampler.load_state_dict({"epoch": 1, "position": len(sampler)})
    assert list(sampler) == []  # nothing left of epoch 1
    assert list(sampler) == sampler.plan(2)
    sampler.load_state_dict({"epoch": 3})
    assert sampler.state_dict() == {"epoch": 3, "position": 0, "seed": 4}
    with pytest.raises(ValueError, match=r"position -1 is outside \[0, "):
        sampler.load_state_dict({"epoch": 0, "position": -1})


def test_world_padding_batches_are_whole_batches_of_distinct_classes():
    labels = _labels([3, 3, 3, 3, 3])  # 5 chunks of 3 -> 3 batches of 2 classes, padded to 4
    sampler = ClassBalancedBatchSampler(labels, 2, 3, seed=2, num_replicas=4, rank=0)
    plan = sampler.plan(0)
    assert len(plan) == 4 and len(sampler) == 1
    for batch in plan:
        counts = Counter(labels[batch].tolist())
        assert len(counts) == 2 and set(counts.values()) == {3}


def test_padding_batches_hold_distinct_classes_and_distinct_images():
    # one batch of real chunks, padded to 8 for 8 ranks: 7 random batches of all 3 classes,
    # each class with exactly M images, so a draw with replacement would repeat one
    labels = _labels([2, 2, 2])
    for seed in range(3):
        plan = ClassBalancedBatchSampler(labels, 3, 2, seed=seed, num_replicas=8, rank=0).plan(0)
        assert len(plan) == 8
        for batch in plan:
            assert sorted(Counter(labels[batch].tolist()).values()) == [2, 2, 2]
            assert len(set(batch)) == 6


def test_the_default_seed_is_zero():
    labels = _labels(SIZES)
    assert list(ClassBalancedBatchSampler(labels, 3, 2)) == list(
        ClassBalancedBatchSampler(labels, 3, 2, seed=0)
    )


def test_a_fresh_sampler_reports_its_batch_size_and_the_start_of_epoch_zero():
    sampler = ClassBalancedBatchSampler(_labels(SIZES), 3, 4, seed=6)
    assert sampler.batch_size == 12
    assert sampler.state_dict() == {"epoch": 0, "position": 0, "seed": 6}
