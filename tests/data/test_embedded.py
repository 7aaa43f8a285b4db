"""Embedded datasets: digits' class-disjoint split and its dihedral training classes, synthetic."""

import numpy as np
import pytest

from dml.data import Digits, Synthetic


def test_digits_splits_are_class_disjoint():
    train, test = Digits(split="train", image_size=8), Digits(split="test", image_size=8)
    assert set(train.labels.tolist()) == {0, 1, 2, 3, 4}
    assert set(test.labels.tolist()) == {5, 6, 7, 8, 9}
    assert len(train) + len(test) == 1797
    assert train.images.shape[1:] == (8, 8)


def test_dihedral_classes_are_the_eight_symmetries_of_the_training_digits():
    plain = Digits(split="train", image_size=8)
    d = Digits(split="train", image_size=8, dihedral_classes=True)
    n = len(plain)
    assert len(d) == 8 * n and sorted(set(d.labels.tolist())) == list(range(40))
    assert np.array_equal(d.labels % 5, np.tile(plain.labels, 8))
    assert np.array_equal(d.images[:n], plain.images)  # identity first
    assert np.array_equal(d.images[n : 2 * n], np.rot90(plain.images, 1, axes=(1, 2)))
    assert np.array_equal(d.images[4 * n : 5 * n], plain.images[:, :, ::-1])  # mirrored
    # the 8 transformed stacks are pairwise different (no symmetry repeated)
    stacks = [d.images[i * n : (i + 1) * n] for i in range(8)]
    assert all(not np.array_equal(stacks[i], stacks[j]) for i in range(8) for j in range(i))
    image, label = d[5 * n]
    assert image.size == (8, 8) and label == plain.labels[0] + 25


def test_dihedral_classes_never_touch_the_test_split():
    with pytest.raises(ValueError, match="split=train only"):
        Digits(split="test", dihedral_classes=True)


def test_synthetic_is_deterministic_for_a_seed():
    a, b = Synthetic(split="train", seed=3), Synthetic(split="train", seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
