"""Label levels: training on another labelling of the train split, scoring the eval split at several levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml.data import Synthetic
from dml.data.datamodule import DMLDataModule
from dml.data.levels import Relabeled, eval_level_labels, level_labels
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


def test_relabeled_returns_the_levels_labels():
    ds = Synthetic(split="train", num_classes=4, modes_per_class=2, images_per_mode=2, image_size=8)
    fine = Relabeled(ds, "fine")
    assert np.array_equal(fine.labels, ds.label_levels["fine"]) and len(fine) == len(ds)
    image, label = fine[3]
    assert label == int(ds.label_levels["fine"][3]) and image.size == ds[3][0].size


def test_unknown_level_names_the_option_and_the_levels():
    ds = Synthetic(split="train", num_classes=4, modes_per_class=2, images_per_mode=2, image_size=8)
    with pytest.raises(
        ValueError,
        match=r"dataset.label_level asks for label level 'subgroup'.*\['coarse', 'fine'\]",
    ):
        level_labels(ds, "subgroup")

    class Plain:
        labels = np.zeros(3)

        def __len__(self):
            return 3

    with pytest.raises(ValueError, match="no label levels"):
        level_labels(Plain(), "fine", option="dataset.eval_levels")


def _datamodule(**options) -> DMLDataModule:
    cfg = {
        "name": "synthetic",
        "train": {
            "_target_": "dml.data.Synthetic",
            "split": "train",
            "num_classes": 6,
            "modes_per_class": 3,
            "images_per_mode": 4,
            "image_size": 8,
        },
        "test": {
            "_target_": "dml.data.Synthetic",
            "split": "test",
            "num_classes": 6,
            "modes_per_class": 3,
            "images_per_mode": 4,
            "image_size": 8,
        },
        "transform": {"train": {"resize": 8, "crop": 8}, "eval": {"resize": 8, "crop": 8}},
        "classes_per_batch": 2,
        "m_per_class": 4,
        **options,
    }
    dm = DMLDataModule(cfg)
    dm.setup("fit")
    return dm


def test_datamodule_trains_on_the_chosen_level_and_scores_the_eval_levels():
    plain = _datamodule()
    assert len(np.unique(plain.train_set.labels)) == 3 and plain.label_levels() is None
    dm = _datamodule(label_level="fine", eval_levels=["fine", "coarse"])
    assert len(np.unique(dm.train_set.labels)) == 9  # 3 classes x 3 modes
    _, y = next(iter(dm.train_dataloader()))
    assert set(y.tolist()) <= set(dm.train_set.labels.tolist())
    levels = dm.label_levels()
    assert set(levels) == {"test"} and set(levels["test"]) == {"fine", "coarse"}
    assert np.array_equal(
        levels["test"]["coarse"], dm.eval_sets["test"].labels
    )  # the eval split is not relabelled


def test_folds_partition_the_training_level():
    dm = _datamodule(label_level="fine", folds=3, fold=0)
    assert (
        len(np.unique(dm.train_set.labels)) == 6 and len(np.unique(dm.eval_sets["val"].labels)) == 3
    )
    assert not set(dm.train_set.labels) & set(dm.eval_sets["val"].labels)


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
