"""dml.losses.build: which config values reach the loss class, what the run fills in, and the
errors that name the option to fix. The end-to-end runs are in tests/integration/test_loss_choices.py."""

from __future__ import annotations

import functools
import logging

import pytest
import torch
from omegaconf import OmegaConf

import dml.losses.build as build
from dml.config import ConfigError, config_dir
from dml.losses import ContrastiveLoss, MarginLoss, MultiSimilarityLoss, TripletLoss
from dml.losses.build import (
    accepted_arguments,
    build_loss,
    loss_arguments,
    loss_class,
    needs_classes,
)

SOFT_TRIPLE = "pytorch_metric_learning.losses.SoftTripleLoss"
PROXY_ANCHOR = "pytorch_metric_learning.losses.ProxyAnchorLoss"
SPARSE_CENTERS = "pytorch_metric_learning.regularizers.SparseCentersRegularizer"


class _Root(torch.nn.Module):
    def __init__(self, root: int = 0, *, flag: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)


class _Middle(_Root):
    def __init__(self, middle: int, **kwargs) -> None:
        super().__init__(**kwargs)


class _NoInit(_Middle):
    """Inherits _Middle's __init__."""


class _Closed(_Middle):
    def __init__(self, closed: int) -> None:
        super().__init__(middle=closed)


class _EmbeddingOnly(torch.nn.Module):
    """A loss that needs the embedding size from the run, but no class count."""

    def __init__(self, embedding_size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.embedding_size, self.scale = embedding_size, scale


def _target(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _file(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(config_dir() / "loss" / f"{name}.yaml"))


def test_accepted_arguments_follow_kwargs_up_the_bases_and_stop_without_them():
    assert set(accepted_arguments(_Middle)) == {"middle", "root", "flag"}
    assert set(accepted_arguments(_NoInit)) == {"middle", "root", "flag"}  # the inherited __init__
    assert set(accepted_arguments(_Closed)) == {"closed"}  # no **kwargs: the bases' are not taken
    assert set(accepted_arguments(_Root)) == {"root", "flag"}  # nn.Module's **kwargs take nothing


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (MarginLoss, "margin"),
        (TripletLoss, "triplet"),
        (ContrastiveLoss, "contrastive"),
        (MultiSimilarityLoss, "multi_similarity"),
    ],
)
def test_dml_loss_defaults_are_the_loss_files_values(cls, name):
    """Used from Python without a config, each dml loss gets the paper values of its loss file."""
    values = {k: v for k, v in _file(name).items() if not k.startswith("_")}
    default = cls()
    for key, value in values.items():
        ours = getattr(default, key)
        assert (ours.item() if isinstance(ours, torch.Tensor) else ours) == pytest.approx(value), (
            key
        )
    assert build_loss({"_target_": _target(cls), **values}).state_dict().keys() == (
        default.state_dict().keys()
    )


def test_needs_classes_only_where_the_class_count_is_set_auto_or_required():
    def node(target, **values):
        return {"_target_": target, **values}

    assert not needs_classes(node("dml.losses.TripletLoss"))  # takes no num_classes
    assert not needs_classes(node("dml.losses.MarginLoss"))  # optional and unset
    assert not needs_classes(node("dml.losses.MarginLoss", num_classes=None))
    assert needs_classes(node("dml.losses.MarginLoss", num_classes=5))  # checked against the data
    assert needs_classes(node("dml.losses.MarginLoss", num_classes="auto"))
    assert needs_classes(node(PROXY_ANCHOR))  # required
    # an `auto` class count in a nested node only (the margin loss's own count unset)
    nested = {"_target_": SPARSE_CENTERS, "num_classes": "auto", "centers_per_class": 2}
    assert needs_classes(node("dml.losses.MarginLoss", regularizer=nested))
    assert not needs_classes(
        node("dml.losses.MarginLoss", regularizer={**nested, "num_classes": 3, "size": "auto"})
    )
    # config nodes (DictConfig): the same answers, interpolations resolved
    assert needs_classes(OmegaConf.load(config_dir() / "loss" / "margin_per_class.yaml"))
    margin_file = OmegaConf.load(config_dir() / "loss" / "margin.yaml")
    assert not needs_classes(margin_file)
    assert needs_classes(OmegaConf.merge(margin_file, {"regularizer": {"num_classes": "auto"}}))
    cfg = OmegaConf.create({"classes": None, "loss": {"_target_": "dml.losses.MarginLoss"}})
    cfg.loss.num_classes = "${classes}"
    assert not needs_classes(cfg.loss)  # resolves to null: unset


def test_auto_is_filled_in_at_any_depth_from_the_run():
    node = {
        "_target_": SOFT_TRIPLE,
        "num_classes": "auto",
        "embedding_size": "auto",
        "centers_per_class": 2,
        "weight_regularizer": {
            "_target_": SPARSE_CENTERS,
            "num_classes": "auto",
            "centers_per_class": 2,
        },
        "weight_reg_weight": 0.5,
    }
    cls, kwargs = loss_arguments(node, num_classes=7, embedding_dim=16)
    assert cls.__name__ == "SoftTripleLoss"
    assert kwargs == {
        **{k: v for k, v in node.items() if k != "_target_"},
        "num_classes": 7,
        "embedding_size": 16,
        "weight_regularizer": {**node["weight_regularizer"], "num_classes": 7},
    }
    loss = build_loss(OmegaConf.create(node), num_classes=7, embedding_dim=16)
    assert loss.fc.shape == (16, 14)
    assert loss.weight_regularizer.same_class_mask.shape == (14, 14)  # 7 classes x 2 centres
    # in a list too; a key that is not the run's keeps its `auto`
    values = {"a": [{"num_classes": "auto", "other": "auto"}, 3], "b": ["auto"]}
    assert build._resolve_auto(values, {"num_classes": 7}) == {
        "a": [{"num_classes": 7, "other": "auto"}, 3],
        "b": ["auto"],
    }


def test_a_class_needing_only_the_embedding_size_gets_it_from_the_run():
    node = {"_target_": _target(_EmbeddingOnly), "scale": 2.0}
    assert loss_arguments(node, num_classes=5, embedding_dim=16)[1]["embedding_size"] == 16
    loss = build_loss(node, num_classes=5, embedding_dim=16)
    assert (loss.embedding_size, loss.scale) == (16, 2.0)
    with pytest.raises(ConfigError, match="needs embedding_size.*dml.training.run.build_run"):
        loss_arguments(node)
    with pytest.raises(ConfigError, match="needs num_classes.*dml.training.run.build_run"):
        loss_arguments({"_target_": PROXY_ANCHOR}, embedding_dim=16)


def test_a_set_class_count_is_checked_against_the_run_an_unset_optional_one_stays_unset():
    node = {"_target_": "dml.losses.MarginLoss", "num_classes": 40}
    assert loss_arguments(node, num_classes=40)[1]["num_classes"] == 40  # exactly the classes
    assert loss_arguments(node, num_classes=30)[1]["num_classes"] == 40  # room for more is fine
    with pytest.raises(ConfigError, match="num_classes=40 but the train split has 41 classes"):
        loss_arguments(node, num_classes=41)
    # optional and unset: no per-class beta, whatever the run's class count
    _, kwargs = loss_arguments({"_target_": "dml.losses.MarginLoss"}, num_classes=40)
    assert "num_classes" not in kwargs and build_loss(kwargs | node).beta_class.shape == (40,)
    assert loss_arguments(
        {"_target_": PROXY_ANCHOR, "num_classes": 5, "embedding_size": 16},
        num_classes=5,
        embedding_dim=16,
    )[1] == {"num_classes": 5, "embedding_size": 16}


def test_interpolations_reach_the_class_resolved():
    cfg = OmegaConf.create(
        {
            "embedding_dim": 16,
            "loss": {
                "_target_": PROXY_ANCHOR,
                "_name_": "proxy_anchor",
                "num_classes": 5,
                "embedding_size": "${embedding_dim}",
            },
        }
    )
    _, kwargs = loss_arguments(cfg.loss, num_classes=5, embedding_dim=16)
    assert kwargs["embedding_size"] == 16


def test_hydra_keys_of_the_node_reach_instantiate():
    loss = build_loss({"_target_": "dml.losses.TripletLoss", "_partial_": True, "margin": 0.3})
    assert isinstance(loss, functools.partial) and loss().margin == 0.3


def test_values_for_another_class_are_left_out_and_named_in_the_log(caplog):
    margin_file = OmegaConf.load(config_dir() / "loss" / "margin.yaml")
    node = OmegaConf.merge(margin_file, {"_target_": PROXY_ANCHOR, "nu": 0.5})  # loss._target_=...
    with caplog.at_level(logging.INFO, logger="dml"):
        cls, kwargs = loss_arguments(node, num_classes=5, embedding_dim=8)
    # nu set on the command line: ProxyAnchor takes none; its own margin, not the margin file's
    assert kwargs == {"num_classes": 5, "embedding_size": 8}
    (line,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    # not taken by the class (beta, learn_beta, nu), the file's own choices for its class
    assert line.startswith(
        "loss ProxyAnchorLoss: left out beta, learn_beta, nu, margin, num_classes "
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dml"):
        loss_arguments(margin_file)
    assert not [r for r in caplog.records if "left out" in r.getMessage()]


def test_a_loss_file_is_read_as_written(tmp_path, monkeypatch):
    """A loss file may interpolate the root config; comparing with it must not resolve it alone."""
    (tmp_path / "loss").mkdir()
    (tmp_path / "loss" / "scaled.yaml").write_text(
        "_target_: dml.losses.TripletLoss\n_name_: scaled\nmargin: ${embedding_dim}\n"
    )
    monkeypatch.setattr(build, "config_dir", lambda: tmp_path)
    node = {"_target_": "dml.losses.MarginLoss", "_name_": "scaled", "margin": 0.3}
    assert loss_arguments(node)[1] == {"margin": 0.3}


def test_config_mistakes_are_config_errors_naming_the_option():
    with pytest.raises(ConfigError, match="has no _target_; choose loss=<name>"):
        loss_class({"margin": 0.2})

    def refused(target: str, **values):
        with pytest.raises(ConfigError) as err:
            build_loss({"_target_": target, **values}, num_classes=3, embedding_dim=4)
        return str(err.value)

    margin, triplet = "dml.losses.MarginLoss", "dml.losses.TripletLoss"
    ms, contrastive = "dml.losses.MultiSimilarityLoss", "dml.losses.ContrastiveLoss"
    assert "loss.margin=-0.1" in refused(margin, margin=-0.1)
    assert "loss.beta=0" in refused(margin, beta=0)
    assert "loss.nu=-1" in refused(margin, nu=-1)
    with pytest.raises(ConfigError, match="loss.num_classes=0 must be a positive int or null"):
        build_loss({"_target_": margin, "num_classes": 0})  # no run to check it against
    assert "loss.margin=-1" in refused(triplet, margin=-1)
    assert "loss.alpha=0" in refused(ms, alpha=0)
    assert "loss.beta=-2" in refused(ms, beta=-2)
    assert "loss.pos_margin=-1" in refused(contrastive, pos_margin=-1)
    assert "loss.neg_margin=-1" in refused(contrastive, neg_margin=-1)
    assert "loss.pos_margin < loss.neg_margin" in refused(contrastive, pos_margin=1, neg_margin=1)
    # the boundaries are valid settings
    assert build_loss({"_target_": margin, "margin": 0, "num_classes": 1}).margin == 0.0
    assert build_loss({"_target_": triplet, "margin": 0}).margin == 0.0
    assert build_loss({"_target_": ms, "alpha": 0.5, "beta": 0.5}).alpha == 0.5
    assert build_loss({"_target_": contrastive, "pos_margin": 0.5}).neg_margin == 1.0
