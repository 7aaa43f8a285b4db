"""Shared test fixtures: Hydra composition of the shipped configs with overrides."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from dml.config import config_dir

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def compose_cfg(tmp_path) -> Callable[..., DictConfig]:
    """compose_cfg("loss=margin", ...) -> the composed train config writing into tmp_path."""

    def _compose(*overrides: str, config_name: str = "train") -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
        return cfg

    yield _compose
    GlobalHydra.instance().clear()
