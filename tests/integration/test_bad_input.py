"""Bad input a user can type or point at: each gets a clear error naming the value and the fix, and
no half-written run folder. Each test here backs a row of the README's bad-input table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from dml.cli.eval import main as eval_main
from dml.config import ConfigError
from dml.data.decode import BadImageError
from dml.training.run import build_module, train


@pytest.fixture
def tiny_cfg(compose_cfg, tiny_run):
    """compose_cfg with tiny_run's overrides (tests/conftest.py) first: a run small enough to start."""
    return lambda *overrides: compose_cfg(*tiny_run, *overrides)


def _fresh_run_dir(cfg) -> Path:
    """The run folder as Hydra leaves it before train() starts: only .hydra/."""
    out = Path(cfg.paths.output_dir)
    (out / ".hydra").mkdir(parents=True)
    (out / ".hydra" / "config.yaml").write_text("seed: 0\n")
    return out


def _fails_cleanly(cfg, match: str, error: type[Exception] = ConfigError) -> str:
    out = _fresh_run_dir(cfg)
    with pytest.raises(error, match=match) as info:
        train(cfg)
    assert not out.exists(), "a run that never started leaves no folder"
    return str(info.value)


def _fake_checkpoint(tiny_cfg, path: Path, *overrides: str) -> Path:
    """A dml-train checkpoint (weights + run config) of the config with `overrides`, without training."""
    cfg = tiny_cfg(*overrides)
    module = build_module(cfg)
    torch.save(
        {
            "state_dict": module.state_dict(),
            "global_step": 1,
            "hyper_parameters": {"config": OmegaConf.to_container(cfg, resolve=True)},
        },
        path,
    )
    return path


# ---- config values that need the data to judge ----------------------------------------------------
def test_m_per_class_above_every_class(tiny_cfg):
    message = _fails_cleanly(tiny_cfg("dataset.m_per_class=500"), "dataset.m_per_class=500")
    assert "lower dataset.m_per_class to at most" in message


def test_more_classes_per_batch_than_the_train_split_has(tiny_cfg):
    message = _fails_cleanly(
        tiny_cfg("dataset.classes_per_batch=41"), "dataset.classes_per_batch=41"
    )
    assert "has only 40 classes" in message


def test_negative_margin_fails_before_the_data_loads(tiny_cfg):
    _fails_cleanly(tiny_cfg("loss=margin", "loss.margin=-0.1"), r"loss.margin=-0.1 is not valid")


# ---- missing or corrupt data ---------------------------------------------------------------------
def test_missing_dataset_files_name_the_file_and_the_download(tiny_cfg, tmp_path):
    message = _fails_cleanly(
        tiny_cfg("dataset=cub200", f"paths.data_dir={tmp_path / 'nowhere'}"), "images.txt"
    )
    assert "dml-data download cub200" in message


def _image_folder(root: Path, classes: int = 3, per_class: int = 4, with_test: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for split, first in (("train", 0), ("test", classes)):
        (root / split).mkdir(parents=True)
        if split == "test" and not with_test:
            continue
        for c in range(first, first + classes):
            (root / split / f"c{c}").mkdir()
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                    root / split / f"c{c}" / f"{i}.png"
                )
    return root


FOLDER = (
    "dataset=folder",
    "dataset.num_workers=0",
    "dataset.image_size=8",
    "dataset.transform.train.crop=8",
    "dataset.transform.eval.resize=8",
    "dataset.transform.eval.crop=8",
    "dataset.classes_per_batch=2",
    "dataset.m_per_class=2",
    "dataset.draft=false",
)


def test_the_folder_defaults_train_on_a_small_own_set(compose_cfg, fast_run, tmp_path):
    # 16 classes of 4 images, cut 8/8: the shipped batch shape and workers fit (16 classes per
    # batch did not); only the image size is shrunk for speed
    root = _image_folder(tmp_path / "images", classes=8, per_class=4)
    size = [o for o in FOLDER if "size" in o or "crop" in o or "resize" in o]
    cfg = compose_cfg(
        *fast_run,
        "backbone.net.width=4",
        "dataset.metrics.nmi=false",
        "trainer.limit_val_batches=1",
        "dataset=folder",
        f"dataset.root={root}",
        *size,
    )
    result = train(cfg)
    assert result["global_step"] == 1 and result["metrics"]["num_queries"] == 32  # 8 x 4 a step


def test_empty_eval_split(tiny_cfg, tmp_path):
    root = _image_folder(tmp_path / "images", with_test=False)
    message = _fails_cleanly(tiny_cfg(*FOLDER, f"dataset.root={root}"), "no images")
    assert str(root / "test") in message


def test_eval_split_with_no_items(tiny_cfg, monkeypatch):
    """The backstop for a user's own dataset class that finds nothing (the shipped ones raise earlier)."""
    from torch.utils.data import Subset

    from dml.data.datamodule import DMLDataModule

    build = DMLDataModule._build
    monkeypatch.setattr(
        DMLDataModule,
        "_build",
        lambda self, node, train: (
            build(self, node, train) if train else Subset(build(self, node, train), [])
        ),
    )
    _fails_cleanly(
        tiny_cfg(), r"dataset=digits: the test split is empty \(0 images\); point dataset.test"
    )


def test_corrupt_image_names_the_file_and_the_switch(tiny_cfg, tmp_path):
    root = _image_folder(tmp_path / "images")
    (root / "test" / "c3" / "0.png").write_bytes(b"not a png")  # every evaluation reads it
    with pytest.raises(BadImageError, match=r"c3/0\.png.*dataset.skip_bad_images=true"):
        train(tiny_cfg(*FOLDER, f"dataset.root={root}"))


def test_skipped_eval_image_is_dropped_counted_and_warned_about_once(tiny_cfg, tmp_path):
    # 3 test classes x 4 images, one corrupt: 11 queries, not 12 with a duplicate of a readable one
    root = _image_folder(tmp_path / "images")
    (root / "test" / "c3" / "0.png").write_bytes(b"not a png")
    cfg = tiny_cfg(
        *FOLDER,
        f"dataset.root={root}",
        "dataset.skip_bad_images=true",
        "trainer.max_epochs=2",
        "trainer.limit_val_batches=null",
    )
    with pytest.warns(UserWarning) as caught:
        result = train(cfg)
    bad = [w for w in caught if "unreadable" in str(w.message)]
    assert len(bad) == 1 and "c3/0.png" in str(bad[0].message)  # two evaluations, one warning
    assert result["metrics"]["num_queries"] == 11
    assert result["dropped_eval_images"] == {"test": 1}
    saved = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    assert saved["dropped_eval_images"] == {"test": 1}


# ---- checkpoints ------------------------------------------------------------------------------------
def test_ckpt_path_that_does_not_exist(tiny_cfg, tmp_path):
    _fails_cleanly(
        tiny_cfg(f"ckpt_path={tmp_path / 'nope.ckpt'}"), "ckpt_path=.*nope.ckpt.*does not exist"
    )


def test_truncated_checkpoint(tiny_cfg, tmp_path):
    path = _fake_checkpoint(tiny_cfg, tmp_path / "last.ckpt")
    path.write_bytes(path.read_bytes()[:1000])
    _fails_cleanly(tiny_cfg(f"ckpt_path={path}"), "cannot be read: it is truncated")


def test_checkpoint_with_arbitrary_objects_is_not_unpickled(tiny_cfg, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save(
        {"state_dict": {}, "payload": OmegaConf.create({"a": 1})}, path
    )  # a class, not plain data
    _fails_cleanly(tiny_cfg(f"ckpt_path={path}"), "weights_only=True")


def test_checkpoint_of_another_model_names_both_shapes(tiny_cfg, tmp_path):
    path = _fake_checkpoint(tiny_cfg, tmp_path / "other.ckpt", "embedding_dim=32")
    message = _fails_cleanly(tiny_cfg(f"ckpt_path={path}"), "another model")
    assert "model.head.weight has shape [32, " in message and "in the checkpoint, [64, " in message
    assert "embedding_dim (checkpoint 32, this run 64)" in message


def test_resume_with_another_seed_keeps_the_run_folder(tiny_cfg):
    cfg = tiny_cfg("resume=true", "seed=1")
    ckpts = Path(cfg.paths.output_dir) / "checkpoints"
    ckpts.mkdir(parents=True)
    _fake_checkpoint(tiny_cfg, ckpts / "last.ckpt")  # written with seed=0
    with pytest.raises(
        ConfigError, match=r"cannot be resumed with this config: seed \(checkpoint 0, this run 1\)"
    ):
        train(cfg)
    assert (ckpts / "last.ckpt").is_file()  # the run being resumed is left alone


def test_dml_eval_errors_exit_2_with_a_message(tiny_cfg, tmp_path, capsys):
    assert eval_main([f"ckpt={tmp_path / 'nope.ckpt'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    path = _fake_checkpoint(tiny_cfg, tmp_path / "ok.ckpt")
    (tmp_path / "cut.ckpt").write_bytes(path.read_bytes()[:500])
    assert eval_main([f"ckpt={tmp_path / 'cut.ckpt'}"]) == 2
    assert "truncated" in capsys.readouterr().err
    assert eval_main([f"ckpt={path}", "embedding_dim=32"]) == 2
    err = capsys.readouterr().err
    assert "[64, " in err and "[32, " in err and "embedding_dim (checkpoint 64, this run 32)" in err


@pytest.mark.slow
def test_cli_resume_with_another_model_exits_2_without_traceback(tiny_cfg, tiny_run, tmp_path):
    path = _fake_checkpoint(tiny_cfg, tmp_path / "other.ckpt", "embedding_dim=32")
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dml.cli.train import main; main()",
            *tiny_run,
            f"ckpt_path={path}",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env=dict(os.environ, WANDB_MODE="offline"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (
        "embedding_dim (checkpoint 32, this run 64)" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    assert not run_dir.exists()


# ---- secrets ------------------------------------------------------------------------------------------
def test_wandb_key_never_reaches_the_run_folder_or_the_console(
    compose_cfg, tiny_run, monkeypatch, capfd
):
    pytest.importorskip("wandb")
    secret = "secret-test-key"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_MODE", "offline")
    # a config that interpolates the key gets it masked in results.json, the checkpoint and the logger
    no_logger = [o for o in tiny_run if o != "logger=none"]
    cfg = compose_cfg(
        *no_logger,
        "trainer.limit_train_batches=1",
        "logger=wandb",
        "logger.wandb.mode=offline",
        "+notes.wandb_api_key=${oc.env:WANDB_API_KEY}",
    )
    out = Path(cfg.paths.output_dir)
    result = train(cfg)
    assert result["config"]["notes"]["wandb_api_key"] == "***"
    console = capfd.readouterr()
    assert secret not in console.out and secret not in console.err
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".ckpt" for p in files) and any("wandb" in p.parts for p in files)
    leaks = [str(p) for p in files if secret.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert (
        json.loads((out / "results.json").read_text())["config"]["notes"]["wandb_api_key"] == "***"
    )


# ---- hardware and missing weights -----------------------------------------------------------------
def test_gpu_trainer_without_a_gpu_names_the_fix(tiny_cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = _fails_cleanly(tiny_cfg("trainer=gpu"), "trainer.accelerator=gpu needs a CUDA GPU")
    assert "trainer=cpu" in message


def test_a_trainer_setting_lightning_refuses_is_a_config_error(tiny_cfg):
    # Lightning's MisconfigurationException (here: an accelerator this machine lacks) is one line
    _fails_cleanly(tiny_cfg("trainer.accelerator=mps"), "^trainer: `MPSAccelerator` can not run")


def test_missing_pretrained_weights_are_a_config_error(
    compose_cfg, fast_run, tmp_path, monkeypatch
):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    enum = torchvision.models.get_model_weights("resnet18").DEFAULT

    def offline(self, *args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(type(enum), "get_state_dict", offline)
    message = _fails_cleanly(
        compose_cfg(*fast_run, "backbone=resnet18", "backbone.net.pretrained=true"),
        "could not load ImageNet",
    )
    assert "backbone.net.weights" in message


def test_dml_eval_backbone_that_cannot_be_built_exits_2(tiny_cfg, tmp_path, capsys):
    path = _fake_checkpoint(tiny_cfg, tmp_path / "ok.ckpt")
    assert eval_main([f"ckpt={path}", "backbone.net.width=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dml-eval: error: backbone.net.width must be >= 1, got 0")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_gpu_trainer_without_a_gpu_exits_2_in_one_line(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dml.cli.train import main; main()",
            *tiny_run,
            "trainer=gpu",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="offline"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [errors[0]] and errors[0].startswith(
        "dml-train: error: trainer.accelerator=gpu"
    )
    assert "Traceback" not in proc.stderr and not run_dir.exists()


def test_wandb_key_without_network_trains_offline(
    compose_cfg, tiny_run, monkeypatch, capfd, caplog
):
    """A cluster node with WANDB_API_KEY exported and no network: the run logs offline at once (wandb
    alone retried for about 90 s and ended in a CommError traceback, leaving a half-made run folder)."""
    pytest.importorskip("wandb")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    no_logger = [o for o in tiny_run if o != "logger=none"]
    cfg = compose_cfg(*no_logger, "trainer.limit_train_batches=1", "logger=wandb")
    out = Path(cfg.paths.output_dir)
    result = train(cfg)
    assert result["global_step"] == 1 and (out / "results.json").is_file()
    (run,) = (out / "wandb").glob("offline-run-*")
    assert (run / f"run-{run.name.rsplit('-', 1)[1]}.wandb").is_file()
    assert not list((out / "wandb").glob("run-*"))  # no online run folder was started
    console = capfd.readouterr()
    assert "does not answer" in caplog.text and "CommError" not in console.err + console.out
    assert f"W&B offline run: {run}; sync it with: wandb sync {run}" in console.out
