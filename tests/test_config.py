"""dml.config: every out-of-range or wrongly typed option is a ConfigError naming the option and the fix."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from omegaconf import OmegaConf

from dml.config import ConfigError, validate, validate_class_sizes, validate_sweep_objective
from dml.training.run import build_objective


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["embedding_dim=0"], "embedding_dim=0 is not valid: expected a positive integer"),
        (["embedding_dim=true"], "embedding_dim=True is not valid"),
        (["seed=-1"], "seed=-1 is not valid"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' is not valid"),
        (["trainer.limit_train_batches=-1"], "trainer.limit_train_batches=-1 is not valid"),
        (["optimizer.lr=-1"], "optimizer.lr=-1 is not valid: expected a positive number"),
        (["dataset.m_per_class=1"], "dataset.m_per_class=1 is not valid: expected an integer >= 2"),
        (["dataset.classes_per_batch=1"], "dataset.classes_per_batch=1 is not valid"),
        (["eval.batch_size=0"], "eval.batch_size=0 is not valid"),
        (["nonfinite=maybe"], "nonfinite='maybe' is not valid: expected skip or stop"),
        (["nonfinite_patience=-1"], "nonfinite_patience=-1 is not valid"),
        (["resume=maybe"], "resume='maybe' is not valid: expected true or false"),
        (
            ["callbacks.last_checkpoint.every_n_train_steps=0"],
            "callbacks.last_checkpoint.every_n_train_steps=0 is not valid: expected a positive integer",
        ),
    ],
)
def test_bad_values_name_the_option_the_value_and_what_is_expected(compose_cfg, overrides, message):
    cfg = compose_cfg(*overrides)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["loss=triplet", "loss.margin=-0.1"],
            "loss.margin=-0.1 is not valid: expected a non-negative number",
        ),
        (["loss=margin", "loss.nu=-1"], "loss.nu=-1 is not valid"),
        (["loss=margin", "loss.beta=0"], "loss.beta=0 is not valid: expected a positive number"),
        (["loss=contrastive", "loss.neg_margin=-1"], "loss.neg_margin=-1 is not valid"),
        (["loss=multi_similarity", "loss.alpha=0"], "loss.alpha=0 is not valid"),
        (["sampler=semihard", "sampler.margin=-0.2"], "sampler.margin=-0.2 is not valid"),
        (["sampler=multi_similarity", "sampler.epsilon=-0.1"], "sampler.epsilon=-0.1 is not valid"),
        (["sampler=distance_weighted", "sampler.cutoff=-0.5"], "sampler.cutoff=-0.5 is not valid"),
    ],
)
def test_bad_loss_and_sampler_values_name_the_option_before_the_data_loads(
    compose_cfg, overrides, message
):
    # the classes check their own arguments; build_objective runs before the datamodule is built
    cfg = compose_cfg(*overrides)
    validate(cfg)
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_objective(cfg)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["loss=margin", "sampler=distance_weighted"],
        ["loss=multi_similarity", "sampler=multi_similarity"],
        ["callbacks=none"],
        ["nonfinite=stop", "nonfinite_patience=0", "resume=true"],
    ],
)
def test_shipped_configs_are_valid(compose_cfg, overrides):
    validate(compose_cfg(*overrides))


def _dataset(p: int, m: int):
    return OmegaConf.create({"dataset": {"name": "toy", "classes_per_batch": p, "m_per_class": m}})


LABELS = np.repeat([0, 1, 2], [2, 5, 9])  # classes of 2, 5 and 9 images


def test_class_sizes_that_fit_pass_silently(caplog):
    with caplog.at_level(logging.WARNING, logger="dml"):
        validate_class_sizes(_dataset(3, 2), LABELS)
    assert not caplog.text


def test_more_classes_per_batch_than_classes():
    with pytest.raises(
        ConfigError, match=r"dataset.classes_per_batch=4 .* only 3 classes; lower .* at most 3"
    ):
        validate_class_sizes(_dataset(4, 2), LABELS)


def test_m_per_class_above_the_largest_class():
    with pytest.raises(ConfigError, match=r"dataset.m_per_class=10 .*\(9 images\).*at most 9"):
        validate_class_sizes(_dataset(2, 10), LABELS)


def test_m_per_class_above_some_classes_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="dml"):
        validate_class_sizes(_dataset(2, 4), LABELS)
    assert (
        "dataset.m_per_class=4: 1 of 3 toy train classes have fewer images (the smallest has 2)"
        in caplog.text
    )


def test_an_optuna_sweep_may_not_maximise_a_test_metric():
    optuna = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    with pytest.raises(ConfigError, match=r"monitor=recall@1 is a test-split metric.*monitor=val/"):
        validate_sweep_objective("recall@1", optuna)
    validate_sweep_objective("val/recall@1", optuna)  # a held-out fold of the train classes
    validate_sweep_objective("recall@1", None)  # a single run reports the test split, tunes nothing
    validate_sweep_objective("recall@1", "hydra._internal.core_plugins.basic_sweeper.BasicSweeper")
