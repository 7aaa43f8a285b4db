"""Label levels in a training run (Levi et al.'s setting, claim L1): train on the coarse labels, score
the unseen classes at the fine and the coarse level from one embedding, as <level>/<metric>, in
every column of results.json and again with dml-eval."""

from __future__ import annotations

import json

import pytest

from dml.training.evaluate_checkpoint import evaluate_checkpoint
from dml.training.run import train
from tests.composing import compose_train

# 4 train classes x 3 modes x 4 images; the 4 test classes likewise: 12 fine classes at test
SMALL = (
    "dataset=synthetic",
    "dataset.train.num_classes=8",
    "dataset.test.num_classes=8",
    "dataset.train.images_per_mode=4",
    "dataset.test.images_per_mode=4",
    "dataset.classes_per_batch=3",
    "dataset.m_per_class=4",
    "backbone=small_cnn",
    "backbone.net.width=8",
    "callbacks.eval_plots=null",
    "callbacks.training_diagnostics=null",
)


@pytest.fixture(scope="module")
def coarse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("levels")
    cfg = compose_train(
        out,
        (
            "debug=quick",
            *SMALL,
            "dataset.label=coarse",
            "dataset.eval_levels=[fine,coarse]",
            "eval.before_training=true",
            "eval.raw_baseline=true",
        ),
    )
    return train(cfg), out


def test_coarse_training_scores_fine_and_coarse_prefixed(coarse_run):
    result, out = coarse_run
    saved = json.loads((out / "results.json").read_text())
    columns = {"trained": saved["metrics"], **saved["baselines"]}
    assert set(columns) == {"trained", "untrained", "backbone", "raw pixels"}
    for name, metrics in columns.items():
        for level in ("fine", "coarse"):
            for metric in ("map@r", "recall@1", "nmi"):
                assert 0.0 <= metrics[f"{level}/{metric}"] <= 1.0, (name, level, metric)
        # the run's own labels are the coarse level: the plain and the coarse/ metrics agree
        assert metrics["coarse/map@r"] == pytest.approx(metrics["map@r"])
        # 12 fine classes of 4 images vs 4 coarse of 12: the fine level is another labelling
        assert metrics["fine/map@r"] != pytest.approx(metrics["coarse/map@r"])
        assert metrics["fine/num_queries"] == metrics["coarse/num_queries"] == 48
    assert saved["config"]["dataset"]["label"] == "coarse"


def test_dml_eval_scores_the_same_levels(coarse_run):
    result, out = coarse_run
    metrics, _ = evaluate_checkpoint(result["metrics_from"])
    for name in ("fine/map@r", "coarse/map@r", "map@r"):
        assert metrics[name] == pytest.approx(result["metrics"][name], abs=1e-4)
