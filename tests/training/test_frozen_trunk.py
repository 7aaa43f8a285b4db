"""backbone.frozen=true: the trunk's features are extracted once (eval transform), cached under a key
of everything that determines them, reused without the trunk's forward, rebuilt when unusable; only
the head trains, resume continues exactly, and the checkpoint scores the run's metrics on features
and on images alike."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from dml.config import ConfigError
from dml.data.features import FeatureDataModule, feature_key
from dml.models.frozen import FrozenTrunkEmbedding
from dml.training.evaluate_checkpoint import evaluate_checkpoint
from dml.training.module import DMLModule
from dml.training.run import build_datamodule, build_model, build_run, fit, train
from tests.composing import compose_train

# digits (0-4 train, 5-9 test) with a 4-wide small CNN: 2 epochs of 3 batches, the whole test split scored
TINY = (
    "debug=tiny",
    "backbone.frozen=true",
    "trainer.limit_val_batches=null",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "callbacks.eval_plots=null",
    "callbacks.training_diagnostics=null",
    "dataset.train.dihedral_classes=false",  # 901 training images: extraction takes a second
    "dataset.classes_per_batch=5",
)


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _cfg(tmp_path: Path, *overrides: str, run: str = "run"):
    cfg = compose_train(
        tmp_path / run, [*TINY, f"paths.cache_dir={tmp_path / 'cache'}", *overrides]
    )
    return cfg


def _datamodule(cfg, model=None) -> tuple[FeatureDataModule, FrozenTrunkEmbedding]:
    torch.manual_seed(int(cfg.seed))  # as build_run seeds: the same config, the same trunk
    model = model if model is not None else build_model(cfg)
    dm = build_datamodule(cfg, model)
    dm.setup("fit")
    return dm, model


class _Spy:
    """Counts the trunk's forward calls (patched on the instance)."""

    def __init__(self, trunk: torch.nn.Module) -> None:
        self.calls = 0
        original = trunk.forward

        def forward(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        trunk.forward = forward


def test_cached_features_are_the_trunks_output_on_eval_transformed_images(tmp_path):
    cfg = _cfg(tmp_path)
    dm, model = _datamodule(cfg)
    assert isinstance(model, FrozenTrunkEmbedding) and isinstance(dm, FeatureDataModule)
    eval_transform = dm.transform(train=False)
    for split, node in (("train", cfg.dataset.train), ("test", cfg.dataset.test)):
        images = hydra.utils.instantiate(node, transform=eval_transform)
        x = torch.stack([images[i][0] for i in range(len(images))])
        with torch.no_grad():
            expected = model.backbone.eval()(x)
        ds = dm.train_set if split == "train" else dm.eval_sets["test"]
        got = dm.features(ds)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the batches the loaders yield are those features, and the model maps them through the head only
    x, y = next(iter(dm.eval_dataloaders()["test"]))
    assert x.dim() == 2 and torch.equal(x, dm.features(dm.eval_sets["test"])[: len(x)])
    assert np.array_equal(y.numpy(), dm.eval_sets["test"].labels[: len(y)])
    files = sorted((tmp_path / "cache" / "features").glob("*.pt"))
    assert len(files) == 2  # one file per split, nothing else left behind (no temporary files)


def test_a_second_datamodule_reads_the_cache_and_never_runs_the_trunk(tmp_path):
    cfg = _cfg(tmp_path)
    first, model = _datamodule(cfg)
    before = {
        n: first.features(ds) for n, ds in [("train", first.train_set), *first.eval_sets.items()]
    }
    spy = _Spy(model.backbone)
    second, _ = _datamodule(cfg, model)
    for name, ds in [("train", second.train_set), *second.eval_sets.items()]:
        assert torch.equal(second.features(ds), before[name])
    for loader in [second.train_dataloader(), *second.eval_dataloaders().values()]:
        next(iter(loader))
    assert spy.calls == 0
    # without the cache files the same calls must run the trunk (the spy can see it)
    for path in (tmp_path / "cache" / "features").glob("*.pt"):
        path.unlink()
    third, _ = _datamodule(cfg, model)
    third.features(third.eval_sets["test"])
    assert spy.calls > 0


def _key(cfg, split: str = "test") -> str:
    dm, model = _datamodule(cfg)
    node = OmegaConf.to_container(cfg.dataset[split], resolve=True)
    spec = OmegaConf.to_container(cfg.dataset.transform.eval, resolve=True)
    ds = dm.eval_sets["test"] if split == "test" else dm.train_set
    return feature_key(model.backbone, node, spec, dm.normalize, ds.labels)


def test_the_key_changes_with_what_determines_the_features_only(tmp_path):
    base = _key(_cfg(tmp_path))
    assert _key(_cfg(tmp_path)) == base  # same config, same seeded weights
    assert _key(_cfg(tmp_path, "trainer.max_epochs=5", "loss=triplet")) == base  # training only
    changed = {
        "image size": _key(
            _cfg(
                tmp_path,
                "dataset.image_size=12",
                "dataset.transform.eval.resize=12",
                "dataset.transform.eval.crop=12",
            )
        ),
        "dataset option": _key(
            _cfg(tmp_path, "dataset.train.dihedral_classes=true"), split="train"
        ),
        "backbone": _key(_cfg(tmp_path, "backbone.net.width=8")),
        "weights": _key(_cfg(tmp_path, "seed=1")),
        "normalisation": _key(_cfg(tmp_path, "backbone.normalize=imagenet")),
    }
    assert _key(_cfg(tmp_path), split="train") != base  # each split its own file
    for what, key in changed.items():
        assert key != base, what


@pytest.mark.parametrize("damage", ["truncate", "other key"])
def test_an_unusable_cache_file_is_rebuilt_not_used(tmp_path, damage):
    cfg = _cfg(tmp_path)
    dm, model = _datamodule(cfg)
    good = dm.features(dm.eval_sets["test"]).clone()
    key = _key(cfg)
    path = tmp_path / "cache" / "features" / f"{key}.pt"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # a whole file, but of other features
        torch.save(
            {"key": "0" * 32, "features": torch.zeros_like(good), "labels": torch.zeros(len(good))},
            path,
        )
    spy = _Spy(model.backbone)
    again, _ = _datamodule(cfg, model)
    assert torch.equal(again.features(again.eval_sets["test"]), good)
    assert spy.calls > 0
    assert torch.equal(torch.load(path, weights_only=True)["features"], good)  # rewritten whole


def test_training_changes_the_head_only_and_never_runs_the_trunk(tmp_path):
    cfg = _cfg(tmp_path, "trainer.limit_train_batches=5", "trainer.max_epochs=3")
    run = build_run(cfg)
    model = run.module.model
    # the features exist before training (the baseline columns make them, or the first loaders)
    run.datamodule.features(run.datamodule.train_set)
    run.datamodule.eval_dataloaders()
    trunk = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    spy = _Spy(model.backbone)
    fit(run)
    assert spy.calls == 0
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, trunk[name]), f"trunk {name} changed"
    assert all(not torch.equal(v, head[k]) for k, v in model.head.state_dict().items())
    assert all(not p.requires_grad for p in model.backbone.parameters())
    groups = run.trainer.optimizers[0].param_groups
    assert [g["name"] for g in groups] == ["head", "loss"]


def test_training_improves_on_the_untrained_head(tmp_path):
    result = train(
        _cfg(
            tmp_path,
            "eval.before_training=true",
            "trainer.max_epochs=4",
            "trainer.limit_train_batches=10",
        )
    )
    assert result["baselines"]["untrained"]["map@r"] < result["metrics"]["map@r"]
    assert "backbone" in result["baselines"]


class _Killed(Exception):
    pass


def test_resume_mid_epoch_continues_a_frozen_run_exactly(tmp_path, monkeypatch):
    every2 = "callbacks.last_checkpoint.every_n_train_steps=2"
    whole = train(_cfg(tmp_path, every2, run="whole"))
    original = DMLModule.training_step

    def killed_at_step_4(self, batch, batch_idx):
        if self.global_step == 4:  # epoch 1, batch 1 (3 per epoch); last.ckpt holds step 4
            raise _Killed
        return original(self, batch, batch_idx)

    monkeypatch.setattr(DMLModule, "training_step", killed_at_step_4)
    with pytest.raises(_Killed):
        train(_cfg(tmp_path, every2, run="parts"))
    monkeypatch.setattr(DMLModule, "training_step", original)
    ckpt = tmp_path / "parts" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 4
    resumed = train(_cfg(tmp_path, every2, "resume=true", run="parts"))
    assert resumed["global_step"] == whole["global_step"] == 6
    assert resumed["metrics"] == pytest.approx(whole["metrics"], abs=1e-6)
    a = torch.load(whole["last_checkpoint"], weights_only=True)["state_dict"]
    b = torch.load(resumed["last_checkpoint"], weights_only=True)["state_dict"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)


def test_the_checkpoint_scores_the_runs_metrics_on_features_and_on_images(tmp_path):
    result = train(_cfg(tmp_path))
    ckpt = result["metrics_from"]
    on_features, cfg = evaluate_checkpoint(ckpt)
    assert cfg.backbone.frozen is True
    assert on_features == pytest.approx(result["metrics"], abs=1e-6)
    # the same weights as a plain EmbeddingModel on images: the checkpoint holds trunk and head
    on_images, cfg = evaluate_checkpoint(ckpt, ["backbone.frozen=false"])
    assert cfg.backbone.frozen is False
    assert on_images == pytest.approx(result["metrics"], abs=1e-5)


def test_ddp_is_refused_with_the_fix(tmp_path):
    cfg = _cfg(tmp_path, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")
    with pytest.raises(
        ConfigError, match="backbone.frozen=true trains on one device.*trainer.devices=1"
    ):
        build_run(cfg)


def test_batch_transforms_never_reach_the_cached_features(tmp_path):
    # emoji augments whole uint8 image batches; a frozen trunk's train loader holds features instead
    emoji = ["dataset=emoji", "dataset.num_classes=12", "dataset.image_size=16"]
    cfg = compose_train(
        tmp_path / "run",
        ["debug=tiny", "backbone.frozen=true", *emoji, f"paths.cache_dir={tmp_path / 'cache'}"],
    )
    assert cfg.dataset.batch_transforms
    dm, model = _datamodule(cfg)
    assert dm.batch_transform is None
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (len(y), dm.features(dm.train_set).shape[1])
    assert torch.equal(dm.on_after_batch_transfer((x, y), 0)[0], x)
