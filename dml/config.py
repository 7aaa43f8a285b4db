"""Where the Hydra configs live, and checks that turn bad config values into clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value a user typed is wrong; the message names the option, the value and the fix."""


def config_dir() -> Path:
    """The configs tree: inside the installed package (wheel) or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"dml's configs/ folder is missing (looked in {here / 'configs'} and {here.parent / 'configs'})")


# option -> (accepted python types, predicate, what is expected); None values are skipped
_CHECKS: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "seed": ((int,), lambda v: v >= 0, "a non-negative integer"),
    "embedding_dim": ((int,), lambda v: v >= 1, "a positive integer"),
    "trainer.max_epochs": ((int,), lambda v: v >= -1, "an integer >= -1 (-1: no limit)"),
    "trainer.max_steps": ((int,), lambda v: v >= -1, "an integer >= -1 (-1: no limit)"),
    "trainer.check_val_every_n_epoch": ((int,), lambda v: v >= 1, "a positive integer"),
    "trainer.log_every_n_steps": ((int,), lambda v: v >= 1, "a positive integer"),
    "trainer.num_nodes": ((int,), lambda v: v >= 1, "a positive integer"),
    "trainer.accumulate_grad_batches": ((int,), lambda v: v >= 1, "a positive integer"),
    "trainer.fast_dev_run": ((bool, int), lambda v: v >= 0, "true/false or a number of batches"),
    "trainer.limit_train_batches": ((int, float), lambda v: v >= 0, "a fraction in [0, 1] or a number of batches"),
    "trainer.limit_val_batches": ((int, float), lambda v: v >= 0, "a fraction in [0, 1] or a number of batches"),
    "dataset.classes_per_batch": ((int,), lambda v: v >= 2, "an integer >= 2 (negatives need a second class)"),
    "dataset.m_per_class": ((int,), lambda v: v >= 2, "an integer >= 2 (positives need a second image)"),
    "dataset.num_workers": ((int,), lambda v: v >= 0, "a non-negative integer"),
    "optimizer.lr": ((int, float), lambda v: v > 0, "a positive number"),
    "optimizer.weight_decay": ((int, float), lambda v: v >= 0, "a non-negative number"),
    "optim.loss_lr": ((int, float), lambda v: v >= 0, "a non-negative number"),
    "optim.backbone_lr_mult": ((int, float), lambda v: v >= 0, "a non-negative number"),
    "eval.batch_size": ((int,), lambda v: v >= 1, "a positive integer"),
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first option whose value has the wrong type or is out of range."""
    for key, (types, ok, expected) in _CHECKS.items():
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True)
        except Exception as err:  # interpolation or missing value
            raise ConfigError(f"{key}: {err}") from err
        if value is None:
            continue
        if isinstance(value, bool) and bool not in types:
            raise ConfigError(f"{key}={value!r} is not valid: expected {expected}")
        if not isinstance(value, types) or not ok(value):
            raise ConfigError(f"{key}={value!r} is not valid: expected {expected}")
