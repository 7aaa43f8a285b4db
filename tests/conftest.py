"""Shared test fixtures: Hydra composition of the shipped configs with overrides, the overrides of a
quick run, single-threaded torch, and (from tests/layouts.py) tiny dataset layouts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hypothesis import settings
from omegaconf import DictConfig, open_dict

from dml.config import config_dir

pytest_plugins = ["tests.layouts"]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# Mutation testing (scripts/mutation.py) runs the property tests with --hypothesis-profile=mutation:
# the same examples for every mutant and no example database carried from one mutant to the next,
# so a mutant's verdict does not depend on the luck of the draw.
settings.register_profile("mutation", derandomize=True, database=None)


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


@pytest.fixture(scope="session")
def fast_run() -> tuple[str, ...]:
    """Overrides of a quick run (configs/debug/quick.yaml): one epoch of 2 batches, no logger, no
    progress bar, no baselines, on the digits with the small CNN (not the default run's emoji and
    EfficientNet-Lite0; a later dataset= or backbone= override still wins)."""
    return ("debug=quick", "dataset=digits", "backbone=small_cnn")


@pytest.fixture(scope="session")
def tiny_run() -> tuple[str, ...]:
    """debug=quick with a 4-wide small CNN, batches of 3 classes x 4 images, one val batch, no NMI
    (configs/debug/tiny.yaml)."""
    return ("debug=tiny",)


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy shared machine two threads wait on
    each other at every op (50x slower); restored afterwards. Folders of tiny-tensor tests use it
    for every test from their conftest."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_wandb_run_left_open():
    """Finish a W&B run a test left open (a Trainer with a WandbLogger outside dml's train()):
    Lightning's WandbLogger logs into an open run instead of starting its own, so the next test's
    run would write into this one's."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
