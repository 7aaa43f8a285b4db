"""Every choice of every config group composes; cheap groups also instantiate."""

from __future__ import annotations

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from dml.config import ConfigError, config_dir, validate
from dml.losses.build import build_loss

GROUPS = ["dataset", "backbone", "sampler", "loss", "optimizer", "scheduler", "trainer", "logger"]


def _choices(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_group_has_choices(group):
    assert _choices(group), f"configs/{group}/ is empty"


@pytest.mark.parametrize(
    ("group", "choice"), [(g, c) for g in GROUPS for c in _choices(g)], ids=lambda v: str(v)
)
def test_every_choice_composes(compose_cfg, group, choice):
    cfg = compose_cfg(f"{group}={choice}")
    assert OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    validate(cfg)
    if group == "sampler":
        assert callable(hydra.utils.instantiate(cfg.sampler))
    if group == "loss":
        assert (
            callable(build_loss(cfg.loss, num_classes=10, embedding_dim=cfg.embedding_dim))
            and cfg.xbm.memory_size == 0
        )
    if group == "optimizer":
        opt = hydra.utils.instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
        assert isinstance(opt, torch.optim.Optimizer)
    if group == "backbone" and choice in ("small_cnn", "resnet18"):
        net = hydra.utils.instantiate(cfg.backbone.net)
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, net.out_features)


def test_defaults_are_the_documented_ones(compose_cfg):
    # the papers' protocol (README "The default run"): Wu et al.'s sampler without rho
    cfg = compose_cfg()
    assert cfg.dataset.name == "emoji" and cfg.dataset.batch_transforms is True
    assert cfg.backbone.net._target_ == "dml.models.EfficientNetLite0"
    assert cfg.backbone.net.pretrained is True and cfg.backbone.freeze_bn is True
    assert cfg.sampler.positive == "all" and cfg.sampler.negative == "distance_weighted"
    assert cfg.sampler.rho == 0.0
    assert cfg.loss._target_ == "dml.losses.MarginLoss"
    assert cfg.optim.backbone_lr_mult == 0.1 and cfg.optimizer.lr == 1e-3
    assert cfg.eval.raw_baseline and cfg.eval.backbone_baseline and cfg.eval.before_training
    # the fast setup for smoke tests keeps its own learning rate
    assert compose_cfg("backbone=small_cnn").optim.backbone_lr_mult == 1.0


def test_canonical_call_composes(compose_cfg):
    cfg = compose_cfg("loss=margin", "sampler=distance_weighted")
    loss = build_loss(cfg.loss, num_classes=10, embedding_dim=cfg.embedding_dim)
    sampler = hydra.utils.instantiate(cfg.sampler)
    assert type(loss).__name__ == "MarginLoss"
    assert sampler.negative == "distance_weighted"


@pytest.mark.parametrize(
    ("override", "option"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs"),
        ("embedding_dim=0", "embedding_dim"),
        ("dataset.m_per_class=1", "dataset.m_per_class"),
        ("optimizer.lr=-1", "optimizer.lr"),
    ],
)
def test_validate_names_the_bad_option(compose_cfg, override, option):
    cfg = compose_cfg(override)
    with pytest.raises(ConfigError, match=option.replace(".", r"\.")):
        validate(cfg)
