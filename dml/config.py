"""Where the Hydra configs live, and checks that turn bad config values into clear errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("dml")


class ConfigError(ValueError):
    """A config value a user typed is wrong; the message names the option, the value and the fix."""


def config_dir() -> Path:
    """The configs tree: inside the installed package (wheel) or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"dml's configs/ folder is missing (looked in {here / 'configs'} and {here.parent / 'configs'})"
    )


def compose_train(out: Path | str, overrides: Sequence[str] = ()) -> DictConfig:
    """The `train` config with `overrides`, composed in Python (no command line), its run folder
    `paths.output_dir` set to `out`: what scripts and tests that run dml-train in-process start from."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


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
    "trainer.limit_train_batches": (
        (int, float),
        lambda v: v >= 0,
        "a fraction in [0, 1] or a number of batches",
    ),
    "trainer.limit_val_batches": (
        (int, float),
        lambda v: v >= 0,
        "a fraction in [0, 1] or a number of batches",
    ),
    "dataset.classes_per_batch": (
        (int,),
        lambda v: v >= 2,
        "an integer >= 2 (negatives need a second class)",
    ),
    "dataset.m_per_class": (
        (int,),
        lambda v: v >= 2,
        "an integer >= 2 (positives need a second image)",
    ),
    "dataset.num_workers": ((int,), lambda v: v >= 0, "a non-negative integer"),
    "optimizer.lr": ((int, float), lambda v: v > 0, "a positive number"),
    "optimizer.weight_decay": ((int, float), lambda v: v >= 0, "a non-negative number"),
    "optim.loss_lr": ((int, float), lambda v: v >= 0, "a non-negative number"),
    "optim.loss_weight_decay": ((int, float), lambda v: v >= 0, "a non-negative number"),
    "optim.backbone_lr_mult": ((int, float), lambda v: v >= 0, "a non-negative number"),
    "eval.batch_size": ((int,), lambda v: v >= 1, "a positive integer"),
    "resume": ((bool,), lambda v: True, "true or false"),
    "nonfinite": ((str,), lambda v: v in ("skip", "stop"), "skip or stop"),
    "nonfinite_patience": ((int,), lambda v: v >= 0, "an integer >= 0 (0: never stop)"),
    "xbm.memory_size": ((int,), lambda v: v >= 0, "a non-negative integer (0 turns XBM off)"),
    "xbm.memory_start": (
        (int,),
        lambda v: v >= 0,
        "a non-negative integer (steps before the memory fills)",
    ),
    "callbacks.last_checkpoint.every_n_train_steps": (
        (int,),
        lambda v: v >= 1,
        "a positive integer (null: last.ckpt after evaluations and at the end only)",
    ),
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


def validate_class_sizes(cfg: DictConfig, labels: Any) -> None:
    """Raise ConfigError when batches of classes_per_batch x m_per_class cannot come from the train labels.

    Classes smaller than m_per_class are topped up with repeated images (the batch sampler does
    that on purpose, e.g. SOP's 2-image classes); that gets a warning. An m_per_class above the
    largest class, where every class would repeat images, is an error.
    """
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    name = cfg.dataset.get("name")
    p, m = int(cfg.dataset.classes_per_batch), int(cfg.dataset.m_per_class)
    if p > len(counts):
        raise ConfigError(
            f"dataset.classes_per_batch={p} but the {name} train split has only {len(counts)} classes; "
            f"lower dataset.classes_per_batch to at most {len(counts)}"
        )
    if m > counts.max():
        raise ConfigError(
            f"dataset.m_per_class={m} is more than the largest class of the {name} train split holds "
            f"({counts.max()} images), so every batch would repeat images; lower dataset.m_per_class to at most "
            f"{counts.max()}"
        )
    small = int((counts < m).sum())
    if small:
        log.warning(
            "dataset.m_per_class=%d: %d of %d %s train classes have fewer images (the smallest has %d); "
            "their batches repeat images",
            m,
            small,
            len(counts),
            name,
            counts.min(),
        )


def validate_sweep_objective(monitor: str, sweeper: str | None) -> None:
    """Raise ConfigError when an Optuna sweep would maximise a test-split metric.

    dml-train returns the run's `monitor` metric to the sweeper; an objective read on the test split
    tunes the hyperparameters on it, and the test numbers of the best trial are then no longer a test.
    A sweep scores its trials on a held-out fold of the training classes instead (monitor=val/...,
    dataset.folds; the shipped hparams_search configs set both). sweeper: the `_target_` of
    hydra.sweeper in a multirun, None in a single run.
    """
    if sweeper is None or "optuna" not in sweeper.lower() or str(monitor).startswith("val/"):
        return
    raise ConfigError(
        f"monitor={monitor} is a test-split metric, and the Optuna sweep would maximise it (tuning on the "
        f"test split); score the trials on a held-out fold of the training classes instead: "
        f"dataset.folds=4 dataset.fold=0 monitor=val/{monitor} (the hparams_search configs set these)"
    )
