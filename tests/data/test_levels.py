"""Label levels: dataset.label picks the labels a split carries, dataset.eval_levels scores the eval
split at several levels from one embedding (Synthetic, and the shipped emoji and fonts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.data import Emoji, Synthetic
from dml.data.datamodule import DMLDataModule
from dml.data.levels import eval_level_labels, level_labels
from dml.metrics import evaluate_embeddings
from dml.training.evaluation import score


def test_synthetic_levels_are_the_modes_within_the_classes():
    ds = Synthetic(split="test", num_classes=6, modes_per_class=3, images_per_mode=4, image_size=8)
    fine, coarse = ds.label_levels["fine"], ds.label_levels["coarse"]
    assert np.array_equal(coarse, ds.labels)
    assert len(np.unique(fine)) == 3 * len(np.unique(coarse)) == 9
    for f in np.unique(fine):  # each mode lies inside one class, and holds images_per_mode images
        assert len(np.unique(coarse[fine == f])) == 1 and (fine == f).sum() == 4
    assert np.array_equal(fine // 3, coarse)


def test_synthetic_label_picks_the_level():
    kw = dict(split="train", num_classes=4, modes_per_class=2, images_per_mode=2, image_size=8)
    fine = Synthetic(label="fine", **kw)
    assert (
        np.array_equal(fine.labels, fine.label_levels["fine"]) and len(np.unique(fine.labels)) == 4
    )
    assert np.array_equal(Synthetic(**kw).labels, fine.label_levels["coarse"])  # coarse by default
    with pytest.raises(ValueError, match="dataset.label='mode'"):
        Synthetic(label="mode", **kw)


def test_emoji_levels_are_the_emoji_and_their_subgroups():
    fine = Emoji(split="test", num_classes=40)
    coarse = Emoji(split="test", num_classes=40, label="coarse")
    assert set(fine.label_levels) == {"fine", "coarse"}
    assert np.array_equal(fine.labels, fine.label_levels["fine"])
    assert np.array_equal(coarse.labels, coarse.label_levels["coarse"])
    assert np.array_equal(fine.label_levels["coarse"], coarse.label_levels["coarse"])
    # every emoji lies in one subgroup, and a subgroup here holds fewer emoji than there are emoji
    levels = fine.label_levels
    for f in np.unique(levels["fine"]):
        assert len(np.unique(levels["coarse"][levels["fine"] == f])) == 1
    assert len(np.unique(levels["coarse"])) < len(np.unique(levels["fine"]))


def test_unknown_level_names_the_option_and_the_levels():
    ds = Synthetic(split="train", num_classes=4, modes_per_class=2, images_per_mode=2, image_size=8)
    with pytest.raises(
        ValueError,
        match=r"dataset.eval_levels asks for label level 'subgroup'.*\['coarse', 'fine'\]",
    ):
        level_labels(ds, "subgroup")

    class Plain:
        labels = np.zeros(3)

        def __len__(self):
            return 3

    with pytest.raises(ValueError, match="no label levels"):
        level_labels(Plain(), "fine")


def _datamodule(label: str = "coarse", **options) -> DMLDataModule:
    split = {
        "_target_": "dml.data.Synthetic",
        "num_classes": 6,
        "modes_per_class": 3,
        "images_per_mode": 4,
        "image_size": 8,
        "label": label,
    }
    cfg = {
        "name": "synthetic",
        "train": {**split, "split": "train"},
        "test": {**split, "split": "test"},
        "transform": {"train": {"resize": 8, "crop": 8}, "eval": {"resize": 8, "crop": 8}},
        "classes_per_batch": 2,
        "m_per_class": 4,
        **options,
    }
    dm = DMLDataModule(cfg)
    dm.setup("fit")
    return dm


def test_datamodule_scores_the_eval_levels_beside_the_trained_level():
    plain = _datamodule()
    assert len(np.unique(plain.train_set.labels)) == 3 and plain.label_levels() is None
    dm = _datamodule(eval_levels=["fine", "coarse"])
    assert len(np.unique(dm.train_set.labels)) == 3  # trains on the 3 classes (coarse)
    levels = dm.label_levels()
    assert set(levels) == {"test"} and set(levels["test"]) == {"fine", "coarse"}
    assert len(np.unique(levels["test"]["fine"])) == 9  # 3 unseen classes x 3 modes
    assert np.array_equal(levels["test"]["coarse"], dm.eval_sets["test"].labels)
    with pytest.raises(ValueError, match="dataset.eval_levels asks for label level 'group'"):
        _datamodule(eval_levels=["group"]).label_levels()


def test_folds_partition_the_training_level():
    dm = _datamodule(label="fine", folds=3, fold=0, eval_levels=["fine", "coarse"])
    assert (
        len(np.unique(dm.train_set.labels)) == 6 and len(np.unique(dm.eval_sets["val"].labels)) == 3
    )
    assert not set(dm.train_set.labels) & set(dm.eval_sets["val"].labels)
    assert set(dm.label_levels()) == {"test"}  # the val fold is scored at its own labels only


def test_score_reports_each_level_from_one_embedding():
    rng = np.random.default_rng(0)
    fine = np.repeat(np.arange(6), 5)
    coarse = fine // 2
    emb = torch.nn.functional.normalize(
        torch.as_tensor(rng.normal(size=(30, 8)), dtype=torch.float32), dim=1
    )
    levels = eval_level_labels({"test": _Levels(fine, coarse)}, ["fine", "coarse"])
    out = score({"test": (emb, torch.as_tensor(coarse))}, ks=(1,), nmi=False, levels=levels)
    direct = evaluate_embeddings(emb, torch.as_tensor(fine), ks=(1,), nmi=False)
    assert out["fine/map@r"] == pytest.approx(direct["map@r"])
    assert out["coarse/map@r"] == pytest.approx(
        out["map@r"]
    )  # the split's own labels are the coarse ones here
    assert out["fine/map@r"] != pytest.approx(out["map@r"])
    with pytest.raises(ValueError, match="30 embeddings"):
        score(
            {"test": (emb, torch.as_tensor(coarse))},
            ks=(1,),
            nmi=False,
            levels={"test": {"fine": fine[:10]}},
        )


class _Levels:
    def __init__(self, fine, coarse):
        self.labels = coarse
        self.label_levels = {"fine": fine, "coarse": coarse}

    def __len__(self):
        return len(self.labels)
