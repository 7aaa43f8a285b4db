"""Image sizes a backbone cannot take and split seeds that are no seeds: one dml error line, exit 2,
no run folder (the run would otherwise crash inside the network or in numpy with a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dml.config import ConfigError
from dml.data.shipped import split_classes
from dml.models import SmallCNN
from dml.models.input_check import check_input_size
from dml.training.run import train


def _started(cfg) -> Path:
    """What Hydra leaves in the run folder before train() starts."""
    out = Path(cfg.paths.output_dir)
    (out / ".hydra").mkdir(parents=True)
    return out


def test_check_input_size_names_the_size_and_the_option():
    model = SmallCNN(width=4)
    check_input_size(model, (3, 4, 4), "small_cnn")  # the smallest it takes
    model.train()
    with pytest.raises(ValueError, match=r"cannot take the 2x2 px images.*dataset.image_size"):
        check_input_size(model, (3, 2, 2), "small_cnn")
    assert model.training  # the mode it was in


@pytest.mark.parametrize("frozen", ["false", "true"])
def test_an_image_size_the_backbone_cannot_take_stops_the_run(compose_cfg, fast_run, frozen):
    # the small CNN's three poolings need 4 px or more; the eval crop is what the model sees. With
    # backbone.frozen=true the images go through the trunk while the data is set up (the feature
    # cache): the same one-line error, not a RuntimeError from inside the extraction
    cfg = compose_cfg(
        *fast_run, f"backbone.frozen={frozen}", "dataset.transform.eval={resize: 2, crop: 2}"
    )
    out = _started(cfg)
    with pytest.raises(ConfigError, match=r"cannot take the 2x2 px images"):
        train(cfg)
    assert not out.exists()


def test_cli_exits_2_on_an_image_size_the_backbone_cannot_take(tmp_path):
    code = "from dml.cli.train import main; main()"
    args = [
        "debug=quick",
        "backbone=bninception",
        "backbone.net.pretrained=false",
        "dataset.num_classes=40",
        "dataset.image_size=16",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "dml-train: error:" in proc.stderr and "16x16 px" in proc.stderr
    assert "dataset.image_size" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seed", [-1, 1.5, "abc", True])
def test_a_split_seed_must_be_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match=r"dataset.seed=.* non-negative integer"):
        split_classes(np.arange(20), "train", seed, 0.5, None)


def test_a_bad_split_seed_stops_the_run(compose_cfg, fast_run):
    cfg = compose_cfg(*fast_run, "dataset=emoji", "dataset.seed=-1", "dataset.num_classes=40")
    out = _started(cfg)
    with pytest.raises(ConfigError, match=r"dataset.seed=-1"):
        train(cfg)
    assert not out.exists()


def test_a_class_count_that_leaves_a_split_without_two_classes_stops_the_run(compose_cfg, fast_run):
    # 5 emoji, 90% train: the test split keeps one class, no negative to rank
    cfg = compose_cfg(
        *fast_run, "dataset=emoji", "dataset.num_classes=5", "dataset.train_fraction=0.9"
    )
    out = _started(cfg)
    with pytest.raises(ConfigError, match=r"test split has 1 fine class"):
        train(cfg)
    assert not out.exists()
