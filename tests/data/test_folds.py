"""Class-disjoint training folds: the partition, the class subset, the options' errors, the datamodule's splits."""

from __future__ import annotations

import numpy as np
import pytest

from dml.data.datamodule import DMLDataModule
from dml.data.folds import ClassSubset, class_partitions, fold_classes, fold_options


class _Labelled:
    """A dataset whose item i is (i, label i)."""

    def __init__(self, labels):
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return i, int(self.labels[i])


@pytest.mark.parametrize("n_classes,folds", [(10, 4), (100, 4), (98, 4), (14, 7), (5, 2)])
def test_partitions_are_disjoint_cover_every_class_and_are_balanced_contiguous_chunks(
    n_classes, folds
):
    rng = np.random.default_rng(n_classes)
    classes = np.sort(rng.choice(1000, n_classes, replace=False))  # not 0..n-1
    labels = rng.permutation(np.repeat(classes, 3))
    parts = class_partitions(labels, folds)
    assert len(parts) == folds
    joined = np.concatenate(parts)
    assert np.array_equal(joined, classes)  # disjoint, complete, in sorted order: contiguous chunks
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_fold_classes_hold_out_exactly_one_partition():
    labels = np.repeat(np.arange(10), 2)
    parts = class_partitions(labels, 4)  # 3, 3, 2, 2 classes
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    for k in range(4):
        train, val = fold_classes(labels, 4, k)
        assert np.array_equal(val, parts[k])
        assert not set(train) & set(val) and set(train) | set(val) == set(range(10))


def test_class_subset_keeps_order_labels_and_items():
    base = _Labelled([3, 1, 2, 3, 1, 0])
    sub = ClassSubset(base, [3, 0])
    assert len(sub) == 3
    assert sub.labels.tolist() == [3, 3, 0]
    assert [sub[i] for i in range(len(sub))] == [(0, 3), (3, 3), (5, 0)]


@pytest.mark.parametrize(
    "options,key",
    [
        ({"folds": 4, "fold": 4}, "dataset.fold=4"),
        ({"folds": 4, "fold": -1}, "dataset.fold=-1"),
        ({"folds": 4, "fold": None}, "dataset.fold=None"),
        ({"folds": 1, "fold": 0}, "dataset.folds=1"),
        ({"folds": True, "fold": 0}, "dataset.folds=True"),
        ({"folds": None, "fold": 2}, "dataset.fold=2 is set but dataset.folds is not"),
    ],
)
def test_bad_fold_options_name_the_key(options, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        fold_options(options)


def test_fold_options_off_and_on():
    assert fold_options({}) is None
    assert fold_options({"folds": None, "fold": None}) is None
    assert fold_options({"folds": 4, "fold": 3}) == (4, 3)


def test_folds_with_fewer_than_two_classes_each_is_an_error_naming_folds():
    assert [len(p) for p in class_partitions([0, 1, 2, 3, 4, 4], 2)] == [3, 2]
    with pytest.raises(
        ValueError, match=r"dataset\.folds=3 but the train split has only 5 classes.*at most 2"
    ):
        class_partitions([0, 1, 2, 3, 4, 4], 3)


def _synthetic(**extra):
    spec = {
        "_target_": "dml.data.Synthetic",
        "num_classes": 16,
        "modes_per_class": 1,
        "images_per_mode": 3,
    }
    return {
        "name": "synthetic",
        "train": {**spec, "split": "train"},
        "test": {**spec, "split": "test"},
        # different crop sizes tell the two transforms apart
        "transform": {
            "train": {"resize": 32, "crop": 24, "flip": True},
            "eval": {"resize": 32, "crop": 32},
        },
        "classes_per_batch": 2,
        "m_per_class": 2,
        **extra,
    }


@pytest.mark.parametrize("fold", [0, 3])
def test_datamodule_trains_without_partition_k_and_validates_on_it_with_the_eval_transform(fold):
    dm = DMLDataModule(_synthetic(folds=4, fold=fold))
    dm.setup("fit")
    held_out = class_partitions(np.arange(8), 4)[fold]  # Synthetic's train classes are 0..7
    assert set(dm.eval_sets) == {"test", "val"}
    train_classes, val_classes = (
        set(dm.train_set.labels.tolist()),
        set(dm.eval_sets["val"].labels.tolist()),
    )
    assert not train_classes & set(held_out.tolist())
    assert val_classes == set(held_out.tolist()) and train_classes | val_classes == set(range(8))
    assert len(dm.eval_sets["val"]) == 2 * 3 and len(dm.train_set) == 6 * 3
    image, label = dm.eval_sets["val"][0]
    assert tuple(image.shape) == (3, 32, 32) and label in val_classes  # eval transform
    assert tuple(dm.train_set[0][0].shape) == (3, 24, 24)  # train transform
    assert list(dm.eval_dataloaders()) == ["test", "val"]


def test_datamodule_without_folds_has_no_val_split_and_a_bad_fold_fails_setup():
    dm = DMLDataModule(_synthetic())
    dm.setup("fit")
    assert set(dm.eval_sets) == {"test"} and len(dm.train_set) == 8 * 3
    with pytest.raises(ValueError, match=r"dataset\.fold=4 is not valid with dataset\.folds=4"):
        DMLDataModule(_synthetic(folds=4, fold=4)).setup("fit")


def test_datamodule_drops_unreadable_val_images_and_counts_only_the_held_out_ones(tmp_path):
    """skip_bad_images with folds: the val split (held-out train classes) loses its unreadable
    images and counts them; a bad image of a training class is not val's (training replaces it)."""
    from PIL import Image

    root = tmp_path / "images"
    for split, first in (("train", 0), ("test", 4)):
        for c in range(first, first + 4):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (10 * c, i, 0)).save(root / split / f"c{c}" / f"{i}.png")
    (root / "train" / "c3" / "0.png").write_bytes(b"broken")  # held out by fold 1 of 2 (c2, c3)
    (root / "train" / "c0" / "1.png").write_bytes(b"broken")  # a training class of fold 1
    (root / "test" / "c5" / "2.png").write_bytes(b"broken")
    node = {
        "_target_": "dml.data.FolderDataset",
        "root": str(root),
        "skip_bad_images": True,
        "draft": False,
    }
    cfg = {
        "name": "folder",
        "folds": 2,
        "fold": 1,
        "num_workers": 0,
        "train": {**node, "split": "train"},
        "test": {**node, "split": "test"},
        "transform": {"train": {"crop": 8}, "eval": {"resize": 8, "crop": 8}},
    }
    dm = DMLDataModule(cfg)
    with pytest.warns(UserWarning, match="unreadable"):
        dm.setup("fit")
    assert dm.dropped_images == {"test": 1, "val": 1}
    assert len(dm.eval_sets["test"]) == 11 and len(dm.eval_sets["val"]) == 5
    assert sorted(set(dm.eval_sets["val"].labels.tolist())) == [2, 3]


def test_setup_prints_one_line_per_split_once(capsys):
    dm = DMLDataModule(_synthetic(folds=4, fold=0))
    dm.setup("fit")
    dm.setup("fit")  # Lightning calls setup again: no second summary
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("dataset ")]
    assert len(lines) == 3
    assert lines[0].endswith("train: 18 images, 6 classes")
    assert lines[1].split(": ")[0].endswith(" test") and lines[2].endswith(
        "val: 6 images, 2 classes"
    )
