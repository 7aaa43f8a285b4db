"""Every paper experiment composes, trains a tiny step on fixture data in the official layout, and
records its published numbers; each experiment's own backbone builds and has the right widths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dml.config import config_dir
from dml.losses.build import build_loss
from dml.training.run import build_model, train

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
# the default run trains one experiment of each paper (all four datasets, both backbones, every
# sampler/loss family); the others differ only in dataset or numbers and run with -m slow
REPRESENTATIVE = {
    "wu2017_margin_cub",
    "levi2020_eps_triplet_cars",
    "levi2020_eps_margin_sop",
    "wang2019_ms512_inshop",
    "musgrave2020_margin_cub",
    # class weights sized from the fixture's classes, a nested regulariser with num_classes: auto
    "musgrave2020_soft_triple_cars",
}
# the fourteen losses of Musgrave et al. 2020's tables (configs/loss/<name>.yaml)
MUSGRAVE2020_LOSSES = (
    "contrastive",
    "triplet",
    "ntxent",
    "proxy_nca",
    "margin",
    "margin_per_class",
    "normalized_softmax",
    "cosface",
    "arcface",
    "fastap",
    "snr_contrastive",
    "multi_similarity",
    "multi_similarity_miner",
    "soft_triple",
)
# a tiny step: the small CNN on 32 px crops, 2 classes x 2 images per batch, no callbacks
TINY = (
    "callbacks=none",
    "backbone=small_cnn",
    "backbone.net.width=8",
    "~backbone.net.pretrained",
    "dataset.classes_per_batch=2",
    "dataset.m_per_class=2",
    "dataset.num_workers=0",
    "dataset.transform.train={crop: 32, random_resized_crop: true, scale: [0.5, 1.0], flip: true}",
    "dataset.transform.eval={resize: 32, crop: 32}",
)


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory, layout_makers) -> dict[str, Path]:
    """Tiny layouts of the four paper datasets (tests/layouts.py), one folder each."""
    roots = {}
    for name in ("cub200", "cars196", "sop", "inshop"):
        roots[name] = tmp_path_factory.mktemp(name)
        layout_makers[name](roots[name])
    return roots


def _experiment_cfg(compose_cfg, name: str, *overrides: str):
    return compose_cfg(f"experiment={name}", *overrides)


def test_every_paper_setting_has_an_experiment():
    stems = set(EXPERIMENTS)
    for dataset in ("cub", "cars", "sop"):
        assert f"wu2017_margin_{dataset}" in stems
        assert (
            f"levi2020_eps_triplet_{dataset}" in stems and f"levi2020_eps_margin_{dataset}" in stems
        )
        for loss in MUSGRAVE2020_LOSSES:
            assert f"musgrave2020_{loss}_{dataset}" in stems
    for dataset in ("cub", "cars", "sop", "inshop"):
        assert f"wang2019_ms512_{dataset}" in stems
    assert {"wang2019_ms64_cub", "wang2019_ms64_cars"} <= stems


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_published_numbers_name_metrics_the_run_reports(compose_cfg, name):
    cfg = _experiment_cfg(compose_cfg, name)
    published = cfg.published
    assert published.paper and published.method
    reported = {f"recall@{k}" for k in cfg.dataset.metrics.ks} | {
        "map@r",
        "r_precision",
        "nmi",
        "f1",
    }
    for metric, value in published.metrics.items():
        assert metric in reported, f"{name}: published.{metric} is not a metric the run reports"
        assert 0 < value <= 100, (
            f"{name}: published numbers are percents as printed, got {metric}={value}"
        )


@pytest.mark.parametrize(
    "name",
    [n if n in REPRESENTATIVE else pytest.param(n, marks=pytest.mark.slow) for n in EXPERIMENTS],
)
def test_experiment_runs_a_tiny_step_on_fixture_data(compose_cfg, data_roots, name):
    # debug=quick alone: fast_run's dataset and backbone would replace the experiment's own
    fast_run = ("debug=quick",)
    cfg = _experiment_cfg(compose_cfg, name, *fast_run, *TINY)
    if cfg.dataset.get("folds"):
        # the fixture train splits hold 3 classes, too few for validation folds of 2 classes or more
        # (tests/training/test_folds_run.py runs the folds): train on the whole train split here
        cfg = _experiment_cfg(
            compose_cfg,
            name,
            *fast_run,
            *TINY,
            "dataset.folds=null",
            "dataset.fold=null",
            "monitor=map@r",
        )
    cfg.dataset.root = str(data_roots[cfg.dataset.name])
    result = train(cfg)
    assert result["global_step"] >= 1
    saved = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    assert saved["config"]["published"] == OmegaConf.to_container(cfg.published)
    assert str(cfg.monitor) in saved["metrics"]
    for k in cfg.dataset.metrics.ks:
        assert 0.0 <= saved["metrics"][f"recall@{k}"] <= 1.0


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n.startswith("musgrave2020_")])
def test_musgrave2020_experiments_train_their_loss_in_the_shared_protocol(compose_cfg, name):
    cfg = _experiment_cfg(compose_cfg, name)
    loss_name, dataset = name[len("musgrave2020_") :].rsplit("_", 1)
    assert cfg.loss._name_ == loss_name and cfg.dataset.name.startswith(dataset)
    assert cfg.embedding_dim == 128 and cfg.dataset.folds == 4 and cfg.monitor == "val/map@r"
    assert (cfg.dataset.classes_per_batch, cfg.dataset.m_per_class) == (8, 4)
    sampler = cfg.get("sampler")
    assert (sampler is not None) == (loss_name == "multi_similarity_miner")  # no mining otherwise
    assert cfg.published.metrics == {}  # never filled from memory
    loss = build_loss(cfg.loss, num_classes=50, embedding_dim=cfg.embedding_dim)
    own = [p for p in loss.parameters() if p.requires_grad]
    # the tuned learning rate of the loss's own parameters is set exactly where it has some
    default = OmegaConf.load(config_dir() / "train.yaml").optim.loss_lr
    assert bool(own) == (cfg.optim.loss_lr != default)


@pytest.mark.parametrize(
    "name", ["wu2017_margin_cub", "wang2019_ms64_cub"]
)  # ResNet-50 and BN-Inception
def test_experiment_backbone_builds_with_its_own_widths(compose_cfg, name):
    cfg = _experiment_cfg(compose_cfg, name, "backbone.net.pretrained=false")
    model = build_model(cfg).eval()
    expected = {"dml.models.TorchvisionResNet": 2048, "dml.models.BNInception": 1024}[
        cfg.backbone.net._target_
    ]
    assert model.backbone.out_features == expected
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, cfg.embedding_dim)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
