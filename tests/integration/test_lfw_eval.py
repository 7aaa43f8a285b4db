"""LFW verification: as the dataset's own evaluation and as an extra evaluation of any run."""

from __future__ import annotations

from pathlib import Path

import pytest

from dml.training.run import train


@pytest.fixture
def lfw_layout(tmp_path, layout_makers, image_writer) -> Path:
    """The LFW fixture layout (tests/layouts.py) plus two people no pair uses, so the train split
    (identities outside pairs.txt) is not empty."""
    root = tmp_path / "lfw_root"
    layout_makers["lfw"](root)
    for name in ("Train_Person_A", "Train_Person_B"):
        for i in range(1, 4):
            image_writer(root / "lfw" / name / f"{name}_{i:04d}.jpg", (24 + i, 24))
    return root


def test_any_run_adds_lfw_verification(compose_cfg, fast_run, lfw_layout):
    cfg = compose_cfg(*fast_run, f"eval.lfw_root={lfw_layout}")
    metrics = train(cfg)["metrics"]
    assert 0.0 <= metrics["lfw/accuracy"] <= 1.0
    assert 0.0 <= metrics["lfw/auc"] <= 1.0
    assert "map@r" in metrics  # the run's own evaluation is still there


def test_lfw_dataset_scores_its_pairs(compose_cfg, fast_run, lfw_layout):
    cfg = compose_cfg(
        *fast_run,
        "eval.before_training=true",  # the untrained baseline is scored on the pairs too
        "dataset=lfw",
        f"dataset.root={lfw_layout}",
        "dataset.num_workers=0",
        "dataset.classes_per_batch=2",
        "dataset.m_per_class=2",
        "dataset.transform.train={resize: 32, crop: 32}",
        "dataset.transform.eval={resize: 32, crop: 32}",
        "backbone=small_cnn",
    )
    result = train(cfg)
    for column in (result["metrics"], result["baselines"]["untrained"]):
        assert 0.0 <= column["verification/accuracy"] <= 1.0
        assert "verification/tar@far=1e-3" in column
