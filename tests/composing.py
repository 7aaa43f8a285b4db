"""Hydra composition of the shipped train config for tests that pick their own run folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from dml.config import config_dir


def compose_train(out: Path, overrides: Sequence[str]) -> DictConfig:
    """The `train` config with `overrides`, writing its run into `out`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg
