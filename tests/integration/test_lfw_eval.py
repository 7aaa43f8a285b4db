"""LFW verification: as the dataset's own evaluation and as an extra evaluation of any run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dml.training.run import train

FAST = (
    "logger=none",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "eval.raw_baseline=false",
)


def _make_lfw(root: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "data" / "conftest.py"
    spec = importlib.util.spec_from_file_location("dml_dataset_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_lfw(root)
    # two people no pair uses, so the train split (identities outside pairs.txt) is not empty
    for name in ("Train_Person_A", "Train_Person_B"):
        for i in range(1, 4):
            module.write_image(root / "lfw" / name / f"{name}_{i:04d}.jpg", (24 + i, 24))


def test_any_run_adds_lfw_verification(compose_cfg, tmp_path):
    _make_lfw(tmp_path / "lfw_root")
    cfg = compose_cfg(*FAST, "eval.before_training=false", f"eval.lfw_root={tmp_path / 'lfw_root'}")
    metrics = train(cfg)["metrics"]
    assert 0.0 <= metrics["lfw/accuracy"] <= 1.0
    assert 0.0 <= metrics["lfw/auc"] <= 1.0
    assert "map@r" in metrics  # the run's own evaluation is still there


def test_lfw_dataset_scores_its_pairs(compose_cfg, tmp_path):
    _make_lfw(tmp_path / "lfw_root")
    cfg = compose_cfg(
        *FAST,
        "dataset=lfw",
        f"dataset.root={tmp_path / 'lfw_root'}",
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
