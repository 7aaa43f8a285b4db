"""Every dataset config composes with train.yaml and instantiates on the fixture layouts."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dml.data.batch_sampler import ClassBalancedBatchSampler
from dml.data.image_list import DatasetLayoutError
from dml.data.transforms import build_transform

pytestmark = pytest.mark.filterwarnings("ignore::dml.data.image_list.DatasetCountWarning")
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _compose(name, overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=[f"dataset={name}", *overrides])


def _splits(cfg):
    ds = cfg.dataset
    names = ["train"] + (["query", "gallery"] if ds.query is not None else ["test"])
    out = {}
    for split in names:
        spec = ds.transform.train if split == "train" else ds.transform.eval
        transform = build_transform(
            OmegaConf.to_container(spec, resolve=True), normalize="imagenet"
        )
        out[split] = instantiate(ds[split], transform=transform)
    return out


@pytest.mark.parametrize(
    "name,ks",
    [
        ("cub200", [1, 2, 4, 8]),
        ("cars196", [1, 2, 4, 8]),
        ("sop", [1, 10, 100, 1000]),
        ("inshop", [1, 10, 20, 30, 40, 50]),
        ("lfw", [1, 2, 4, 8]),
    ],
)
def test_benchmark_configs_instantiate(tmp_path, name, ks, layout_makers, image_writer):
    layout_makers[name](tmp_path / name)
    if name == "lfw":  # a training identity that no pair uses
        for i in (1, 2):
            image_writer(
                tmp_path / "lfw" / "lfw" / "New_Person" / f"New_Person_{i:04d}.jpg", (30, 30)
            )
    cfg = _compose(name, [f"paths.data_dir={tmp_path}"])
    assert cfg.dataset.name == name and list(cfg.dataset.metrics.ks) == ks
    assert cfg.dataset.raw_baseline is False
    splits = _splits(cfg)
    for data in splits.values():
        image, label = data[0]
        assert image.shape == (3, 224, 224) and isinstance(label, int)
    if name == "lfw":
        assert cfg.dataset.verification and len(splits["test"].pairs) == 12
    train = splits["train"]
    p = min(cfg.dataset.classes_per_batch, train.num_classes)
    batch = next(iter(ClassBalancedBatchSampler(train.labels, p, cfg.dataset.m_per_class)))
    assert len(batch) == p * cfg.dataset.m_per_class


def test_crop_to_bbox_and_cache_overrides(tmp_path, cub_root):
    root, _ = cub_root
    cfg = _compose(
        "cub200",
        [
            f"dataset.root={root}",
            "dataset.crop_to_bbox=true",
            f"dataset.cache_dir={tmp_path / 'cache'}",
            "dataset.cache_size=32",
        ],
    )
    data = instantiate(cfg.dataset.test)
    assert data.boxes is not None and data.cache.dir == tmp_path / "cache" / "32-bbox"
    image, _ = data[0]
    assert image.size == (5, 6)


@pytest.mark.parametrize("name", ["folder", "csv"])
def test_own_data_configs(tmp_path, image_writer, name):
    rows = []
    for c in ["ant", "bee", "cat", "dog"]:
        for k in range(3):
            image_writer(tmp_path / c / f"{k}.jpg", (40, 30))
            rows.append(f"{c}/{k}.jpg,{c}")
    (tmp_path / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    cfg = _compose(name, [f"dataset.root={tmp_path}"])
    splits = _splits(cfg)
    assert set(splits["train"].class_ids.tolist()) == {"ant", "bee"}
    assert set(splits["test"].class_ids.tolist()) == {"cat", "dog"}
    assert splits["test"][0][0].shape == (3, 224, 224)
    assert torch.is_tensor(splits["train"][0][0])


@pytest.mark.parametrize(
    "name,match", [("folder", "set dataset.root"), ("csv", "set dataset.root")]
)
def test_own_data_without_files_says_set_root(tmp_path, name, match):
    cfg = _compose(name, [f"paths.data_dir={tmp_path}"])
    with pytest.raises(Exception, match=match) as err:  # Hydra wraps the dataset's error
        instantiate(cfg.dataset.train)
    assert "DatasetLayoutError" in repr(err.value) or isinstance(err.value, DatasetLayoutError)


@pytest.mark.parametrize("name", ["emoji", "fonts"])
def test_shipped_dataset_configs(name):
    cfg = _compose(name, [])
    assert cfg.dataset.name == name and cfg.dataset.monitor == "map@r" and cfg.dataset.raw_baseline
    for split in ("train", "eval"):  # no flips, no colour jitter: both would merge classes
        spec = cfg.dataset.transform[split]
        assert not spec.get("flip") and not spec.get("color_jitter")
    splits = _splits(cfg)
    image, label = splits["test"][0]
    assert image.shape == (3, 64, 64) and isinstance(label, int)
    train = splits["train"]
    # every class can fill its m_per_class slots without repeating an image
    assert np.bincount(train.labels)[np.unique(train.labels)].min() >= cfg.dataset.m_per_class
    p, m = cfg.dataset.classes_per_batch, cfg.dataset.m_per_class
    batch = next(iter(ClassBalancedBatchSampler(train.labels, p, m)))
    assert len(batch) == p * m
