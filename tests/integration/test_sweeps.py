"""Sweeps end to end: a tiny Optuna search and a tiny multirun grid on the embedded digits set
(dml-train as a subprocess), each turned into a table by dml-report; the shipped search, grid and
W&B sweep files name options that exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from hydra.utils import instantiate

from dml.cli.report import main as report_main
from dml.config import config_dir, validate_sweep_objective
from dml.losses.build import build_loss
from dml.report import load_runs, summarize

# no callbacks, a narrower small CNN, no k-means: the sweep machinery is under test
SWEEP = ("callbacks=none", "backbone.net.width=8", "dataset.metrics.nmi=false")
REPO = Path(__file__).resolve().parents[2]


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", HYDRA_FULL_ERROR="1")
    code = "from dml.cli.train import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_tiny_optuna_sweep_finishes_and_reports(fast_run, tmp_path, capsys):
    sweep = tmp_path / "optuna"
    proc = _train(
        "hparams_search=optuna_margin",
        "loss=margin",
        "sampler=distance_weighted",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        *fast_run,
        *SWEEP,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert len(results) == 2
    # each trial trains on 3 of 4 class-disjoint folds of the train classes and is scored on the 4th
    assert all(r["config"]["monitor"] == "val/map@r" for r in results)  # digits monitors map@r
    assert all(r["config"]["dataset"]["folds"] == 4 for r in results)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    # the sweeper maximised the held-out fold's metric, not the test split's
    assert best["best_value"] == pytest.approx(max(r["metrics"]["val/map@r"] for r in results))
    assert best["best_value"] not in [r["metrics"]["map@r"] for r in results]
    assert set(best["best_params"]) == {"optimizer.lr", "loss.margin", "loss.beta", "optim.loss_lr"}

    assert report_main([str(sweep)]) == 0
    table = capsys.readouterr().out
    assert table.count("| 1 |") == 2  # one row per trial (each trial is its own config)
    assert "hparams_search=optuna_margin" in table and "loss.margin=" in table


def test_tiny_multirun_grid_is_a_table_with_mean_and_std(fast_run, tmp_path, capsys):
    sweep = tmp_path / "grid"
    proc = _train(
        "-m",
        "loss=triplet,margin",
        "seed=0,1",
        *fast_run,
        *SWEEP,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(sweep.glob("*/results.json"))) == 4

    (table,) = summarize(load_runs([sweep]))
    rows = {r.method: r for r in table.rows}
    assert set(rows) == {"loss=triplet", "loss=margin"} and all(r.n == 2 for r in rows.values())
    for row in rows.values():
        mean, std = row.values["map@r"]
        assert 0 <= mean <= 100 and std is not None

    assert report_main([str(sweep), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("dataset,method,source,n,recall@1,recall@1_std")
    assert len(lines) == 3 and all(line.startswith("digits,loss=") for line in lines[1:])


@pytest.mark.parametrize(
    "search, partner",
    [
        ("optuna_margin", "experiment=wu2017_margin_cub"),
        ("optuna_margin", "loss=margin"),
        ("optuna_multi_similarity", "experiment=wang2019_ms512_cub"),
        ("optuna_triplet", "experiment=levi2020_eps_triplet_cub"),
    ],
)
def test_optuna_searches_name_existing_options(compose_cfg, search, partner):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[f"hparams_search={search}", partner],
            return_hydra_config=True,
        )
    GlobalHydra.instance().clear()
    assert (
        cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
        and cfg.hydra.sweeper.direction == "maximize"
    )
    for key in cfg.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, (
            f"{search}: {key} is not an option of {partner}"
        )
    # the objective is a validation metric on a held-out fold of the train classes, not the test split
    assert cfg.monitor.startswith("val/") and cfg.dataset.folds == 4 and cfg.dataset.fold == 0
    validate_sweep_objective(cfg.monitor, cfg.hydra.sweeper._target_)


def test_an_optuna_sweep_on_a_test_metric_is_refused(fast_run, tmp_path):
    sweep = tmp_path / "optuna"
    proc = _train(
        "hparams_search=optuna_margin",
        "monitor=map@r",  # the test split's metric
        "hydra.sweeper.n_trials=1",
        *fast_run,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "monitor=map@r is a test-split metric" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(sweep.glob("*/results.json"))


def test_wu2017_ablation_grid_cells_all_compute_a_loss(compose_cfg):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        base = compose(
            config_name="train",
            overrides=["hparams_search=wu2017_ablation"],
            return_hydra_config=True,
        )
    params = dict(base.hydra.sweeper.params)
    assert params["seed"] == "0,1,2"
    losses, samplers = params["loss"].split(","), params["sampler"].split(",")
    assert set(losses) == {"contrastive", "triplet", "margin"} and len(samplers) == 3
    torch.manual_seed(0)
    embeddings = F.normalize(torch.randn(20, 16), dim=1).requires_grad_()
    labels = torch.arange(5).repeat_interleave(4)
    for loss_name in losses:
        for sampler_name in samplers:
            with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                cfg = compose(
                    config_name="train",
                    overrides=[
                        "hparams_search=wu2017_ablation",
                        f"loss={loss_name}",
                        f"sampler={sampler_name}",
                    ],
                )
            GlobalHydra.instance().clear()
            assert (
                cfg.dataset.name == "cub200"
                and cfg.backbone.net.name == "resnet50"
                and cfg.embedding_dim == 128
            )
            tuples = instantiate(cfg.sampler)(embeddings.detach(), labels)
            value = build_loss(cfg.loss)(embeddings, labels, tuples)
            assert torch.isfinite(value), (loss_name, sampler_name)


def test_wandb_sweep_file_sweeps_options_that_exist(compose_cfg):
    sweep = yaml.safe_load((REPO / "sweeps" / "wandb_margin.yaml").read_text())
    assert sweep["method"] in ("bayes", "random", "grid") and sweep["metric"]["goal"] == "maximize"
    assert sweep["metric"]["name"].startswith("eval/val/")  # a held-out fold, not the test split
    command = sweep["command"]
    assert command[:2] == ["${env}", "dml-train"] and command[-1] == "${args_no_hyphens}"
    fixed = [c for c in command[2:-1]]
    sample = []
    for key, spec in sweep["parameters"].items():
        value = spec["values"][0] if "values" in spec else spec["min"]
        sample.append(f"{key}={value}")
    cfg = compose_cfg(*fixed, *sample)  # the agent's command composes: every name exists
    assert (
        cfg.loss._target_ == "dml.losses.MarginLoss"
        and cfg.embedding_dim == sweep["parameters"]["embedding_dim"]["values"][0]
    )
    assert f"eval/{cfg.monitor}" == sweep["metric"]["name"] and cfg.dataset.folds == 4
