"""Class-disjoint fold runs end to end on the embedded synthetic set: val metrics, checkpoint picked on
them, results.json, and dml-eval of the fold models' concatenated embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from dml.cli.eval import main as eval_main
from dml.config import ConfigError, config_dir
from dml.training.evaluate_checkpoint import concatenated_embeddings, evaluate_checkpoint
from dml.training.evaluation import score
from dml.training.run import train

# fast_run (tests/conftest.py) over two epochs, without the plotting callbacks
TWO_EPOCHS = (
    "trainer.max_epochs=2",
    "callbacks.eval_plots=null",
    "callbacks.training_diagnostics=null",
)
# 8 train classes x 8 images, 8 test classes: 2 folds of 4 classes
SMALL = (
    "dataset=synthetic",
    "dataset.train.num_classes=16",
    "dataset.test.num_classes=16",
    "dataset.train.modes_per_class=2",
    "dataset.test.modes_per_class=2",
    "dataset.train.images_per_mode=4",
    "dataset.test.images_per_mode=4",
    "dataset.classes_per_batch=3",
    "dataset.m_per_class=4",
    "backbone.net.width=8",
    # eval-mode BatchNorm and a large step: 4 steps spread the embeddings out of the untrained
    # network's narrow cone, so the metrics do not hinge on float rounding among near-ties
    "backbone.freeze_bn=true",
    "optimizer.lr=0.01",
)


def _compose(out: Path, fast_run: tuple[str, ...], *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*fast_run, *TWO_EPOCHS, *SMALL, *overrides])
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


@pytest.fixture(scope="module")
def fold_runs(tmp_path_factory, fast_run) -> list[tuple[dict, Path]]:
    """Folds 0 and 1 of dataset.folds=2, monitored on the validation fold: (results, run folder) each."""
    runs = []
    for fold in (0, 1):
        out = tmp_path_factory.mktemp(f"fold{fold}")
        cfg = _compose(
            out, fast_run, "dataset.folds=2", f"dataset.fold={fold}", "monitor=val/map@r"
        )
        runs.append((train(cfg), out))
    return runs


def test_fold_run_logs_val_metrics_and_records_them_in_results_json(fold_runs):
    for result, out in fold_runs:
        saved = json.loads((out / "results.json").read_text())
        assert saved["metrics"] == result["metrics"]
        for name in ("map@r", "recall@1", "val/map@r", "val/recall@1", "val/r_precision"):
            assert 0.0 <= saved["metrics"][name] <= 1.0
        assert saved["metrics"]["num_queries"] == 64 and saved["metrics"]["val/num_queries"] == 32
        assert saved["config"]["monitor"] == "val/map@r"


def test_reported_metrics_are_those_of_the_checkpoint_the_val_fold_picked(fold_runs):
    result, out = fold_runs[0]
    best = result["best_checkpoint"]
    assert best and Path(best).is_file() and result["metrics_from"] == best
    callback = torch.load(best, map_location="cpu", weights_only=True)["callbacks"]
    state = next(v for k, v in callback.items() if "ModelCheckpoint" in k and v.get("monitor"))
    assert state["monitor"] == "eval/val/map@r"
    assert float(state["best_model_score"]) == pytest.approx(
        result["metrics"]["val/map@r"], abs=1e-6
    )
    metrics, _ = evaluate_checkpoint(best)  # the fold checkpoint re-embeds test and its val fold
    for name in ("map@r", "recall@1", "val/map@r"):
        assert metrics[name] == pytest.approx(result["metrics"][name], abs=1e-4)


def test_score_prefixes_the_val_split_and_leaves_test_names_alone():
    g = torch.Generator().manual_seed(0)
    test = (
        torch.nn.functional.normalize(torch.randn(20, 4, generator=g), dim=1),
        torch.arange(20) % 4,
    )
    val = (
        torch.nn.functional.normalize(torch.randn(12, 4, generator=g), dim=1),
        torch.arange(12) % 3,
    )
    alone = score({"test": test}, ks=(1,), nmi=False)
    both = score({"test": test, "val": val}, ks=(1,), nmi=False)
    assert {k: v for k, v in both.items() if not k.startswith("val/")} == alone
    assert {k.removeprefix("val/"): v for k, v in both.items() if k.startswith("val/")} == score(
        {"test": val}, ks=(1,), nmi=False
    )


def test_val_monitor_without_folds_is_a_config_error(fast_run, tmp_path):
    with pytest.raises(
        ConfigError, match=r"monitor=val/map@r needs a validation fold.*dataset\.folds"
    ):
        train(_compose(tmp_path / "run", fast_run, "monitor=val/map@r"))
    with pytest.raises(ConfigError, match=r"dataset\.fold=2 is not valid with dataset\.folds=2"):
        train(_compose(tmp_path / "run", fast_run, "dataset.folds=2", "dataset.fold=2"))
    assert not (tmp_path / "run").exists()


def test_concatenated_embeddings_join_each_models_test_embeddings(fold_runs):
    (r0, _), (r1, _) = fold_runs
    c0, c1 = r0["best_checkpoint"], r1["best_checkpoint"]
    one, cfg, _ = concatenated_embeddings([c0])
    assert (
        set(one) == {"test"} and cfg.dataset.name == "synthetic"
    )  # the training fold is off: no val split
    e0, labels = one["test"]
    assert e0.shape == (64, cfg.embedding_dim)
    # the test split embedded by that checkpoint's own model: dml-eval's test metrics of it
    single, _ = evaluate_checkpoint(c0)
    assert score(one, ks=cfg.dataset.metrics.ks) == {
        k: v for k, v in single.items() if not k.startswith("val/")
    }
    e1 = concatenated_embeddings([c1])[0]["test"][0]
    both, _, _ = concatenated_embeddings([c0, c1])
    assert torch.equal(both["test"][1], labels)
    assert torch.allclose(both["test"][0], torch.cat([e0, e1], dim=1) / 2**0.5, atol=1e-6)
    # a model joined with itself keeps its similarities (so its distances)
    doubled = concatenated_embeddings([c0, c0])[0]["test"][0]
    assert torch.allclose(doubled @ doubled.T, e0 @ e0.T, atol=1e-6)


def test_dml_eval_concatenates_the_fold_models(fold_runs, tmp_path, capsys):
    (r0, _), (r1, _) = fold_runs
    out = tmp_path / "concat.json"
    assert eval_main([f"ckpt=[{r0['best_checkpoint']},{r1['best_checkpoint']}]", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "2 checkpoints, embeddings concatenated" in printed and "| map@r |" in printed
    saved = json.loads(out.read_text())
    assert saved["checkpoint"] == [r0["best_checkpoint"], r1["best_checkpoint"]]
    assert 0.0 <= saved["metrics"]["map@r"] <= 1.0 and saved["metrics"]["num_queries"] == 64
    joined = concatenated_embeddings([r0["best_checkpoint"], r1["best_checkpoint"]])[0]
    assert saved["metrics"] == score(
        joined, ks=[1, 2, 4, 8]
    )  # the joined embeddings are what is scored
    assert (
        eval_main([f"ckpt=[{r0['best_checkpoint']}]"]) == 0
    )  # a one-item list is a plain dml-eval
    assert eval_main(["ckpt=[]"]) == 2
    assert "at least two checkpoints" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["cub", "cars", "sop"])
def test_musgrave_experiments_train_fold_0_of_4_and_pick_checkpoints_on_it(compose_cfg, dataset):
    cfg = compose_cfg(f"experiment=musgrave2020_margin_{dataset}")
    assert (cfg.dataset.folds, cfg.dataset.fold, cfg.monitor) == (4, 0, "val/map@r")
    assert cfg.callbacks.model_checkpoint.monitor == "eval/val/map@r"
    assert (
        compose_cfg(f"experiment=musgrave2020_margin_{dataset}", "dataset.fold=3").dataset.fold == 3
    )
