"""The diagnostics callbacks on tiny digits runs: pictures in <run>/plots, W&B images and histograms,
learning rates, training curves that survive a checkpoint, images per second in the progress bar."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import wandb
from PIL import Image
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import WandbLogger

from dml.training.callbacks import (
    EvalPlots,
    ImageRate,
    ImagesPerSecondTQDM,
    TrainingDiagnostics,
    progress,
)
from dml.training.evaluation import Evaluator
from dml.training.run import build_callbacks, build_datamodule, build_module, train
from dml.viz.retrieval_grid import grid_pixels
from dml.viz.training_curves import curves_size

EVAL_SIZES = {
    "retrieval_grid": grid_pixels(8, 5),
    "projection": (700, 600),
    "pair_distances": (700, 400),
    "recall_curve": (600, 400),
}


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


def test_default_run_writes_every_picture(compose_cfg, fast_run):
    cfg = compose_cfg(*fast_run, "loss=margin", "sampler=distance_weighted")
    train(cfg)
    plots = Path(cfg.paths.output_dir) / "plots"
    sizes = {p.stem: png_size(p) for p in plots.glob("*.png")}
    # training curves: eval/map@r (the monitor, per evaluation), loss, learning rate,
    # active_fraction, beta_mean panels
    w, h = curves_size(5)
    assert sizes == {
        **EVAL_SIZES,
        "sampled_distances": (1000, 400),
        "training_curves": (round(w * 100), round(h * 100)),
    }
    assert not [p for p in plots.iterdir() if p.is_dir()]  # every_n_epochs=0: no per-epoch folders


def test_callbacks_over_two_epochs_with_wandb(compose_cfg, fast_run, tmp_path, monkeypatch):
    logged: list[tuple[dict, int | None]] = []
    monkeypatch.setattr(
        WandbLogger,
        "log_metrics",
        lambda self, metrics, step=None: logged.append((dict(metrics), step)),
    )
    cfg = compose_cfg(
        *fast_run,
        "trainer.max_epochs=2",
        "loss=margin",
        "loss.num_classes=40",
        "sampler=distance_weighted",
        "scheduler=none",
        "callbacks.eval_plots.every_n_epochs=1",
        "callbacks.eval_plots.projection=pca",
        "callbacks.training_diagnostics.every_n_epochs=1",
        "+callbacks.training_diagnostics.log_every_n_steps=1",
        "callbacks.progress_bar.style=tqdm",
        "callbacks.model_checkpoint=null",
        "callbacks.last_checkpoint=null",
    )
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    module = build_module(cfg, evaluator=Evaluator.from_config(cfg, datamodule))
    callbacks = build_callbacks(cfg.callbacks, progress_bar=True)
    evalp, diag, bar = (
        next(c for c in callbacks if isinstance(c, t))
        for t in (EvalPlots, TrainingDiagnostics, ProgressBar)
    )
    logger = WandbLogger(mode="disabled", save_dir=str(tmp_path))
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=logger,
        callbacks=callbacks,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        log_every_n_steps=1,
    )
    trainer.fit(module, datamodule=datamodule)

    plots = Path(cfg.paths.output_dir) / "plots"
    for folder in (plots / "epoch_000", plots / "epoch_001", plots):
        names = {p.stem for p in folder.glob("*.png")}
        assert names == {*EVAL_SIZES, "sampled_distances", "training_curves"}, folder
    for name, size in EVAL_SIZES.items():
        assert png_size(plots / f"{name}.png") == size
        # the last evaluation was drawn once, at epoch 1, and copied as the final picture
        assert filecmp.cmp(
            plots / f"{name}.png", plots / "epoch_001" / f"{name}.png", shallow=False
        )
    assert set(evalp.final) == set(EVAL_SIZES) and set(diag.final) == {
        "sampled_distances",
        "training_curves",
    }

    # W&B: the pictures as images, the picked/batch distances and per-class beta as histograms
    images = {
        k
        for m, _ in logged
        for k, v in m.items()
        if isinstance(v, list) and isinstance(v[0], wandb.Image)
    }
    assert images == {f"plots/{n}" for n in (*EVAL_SIZES, "sampled_distances", "training_curves")}
    hists = {k for m, _ in logged for k, v in m.items() if isinstance(v, wandb.Histogram)}
    assert {
        "train/distances/picked_positive (all)",
        "train/distances/picked_negative (distance_weighted)",
        "train/distances/batch_positive",
        "train/distances/batch_negative",
        "train/beta_class",
    } <= hists

    # learning rates per parameter group; training curves every step (log_every_n_steps=1)
    assert trainer.logged_metrics["train/lr/loss"] == torch.tensor(cfg.optim.loss_lr)
    assert {"loss", "lr/head", "lr/loss", "beta_mean", "active_fraction"} <= set(diag.history)
    assert [s for s, _ in diag.history["loss"]] == [1, 2, 3, 4]
    assert all(0.0 <= v <= 1.0 for _, v in diag.history["active_fraction"])
    # the monitor metric per evaluation (end of epochs 0 and 1), the values the run logged
    evaluations = [m["eval/map@r"] for m, _ in logged if "eval/map@r" in m]
    assert [s for s, _ in diag.history["eval/map@r"]] == [2, 4] and len(evaluations) == 2
    assert [v for _, v in diag.history["eval/map@r"]] == pytest.approx(evaluations)

    # the curves go into checkpoints as plain data (weights_only loading) and come back
    state = diag.state_dict()
    torch.save(state, tmp_path / "state.pt")
    restored = TrainingDiagnostics()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert restored.history == diag.history

    metrics = bar.get_metrics(trainer, module)
    assert isinstance(bar, ImagesPerSecondTQDM)
    assert float(metrics["img/s"]) > 0 and float(metrics["eval img/s"]) > 0


def test_progress_bar_dropped_when_the_trainer_has_none(compose_cfg):
    cfg = compose_cfg()
    assert any(
        isinstance(c, ProgressBar) for c in build_callbacks(cfg.callbacks, progress_bar=True)
    )
    assert not any(
        isinstance(c, ProgressBar) for c in build_callbacks(cfg.callbacks, progress_bar=False)
    )


def test_image_rate_over_a_window(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    rate = ImageRate(window=2)
    rate.start()  # t=0
    assert rate.rate() is None
    rate.add(10)  # t=1
    rate.add(30)  # t=2
    assert rate.rate() == 20.0
    rate.add(50)  # t=3: the window keeps the last 2 batches, timed from t=1
    assert rate.rate() == 40.0


def test_a_step_record_is_counted_once_even_when_the_next_step_was_skipped():
    # a step skipped for NaN embeddings never reaches the objective: its record is the previous one's
    from types import SimpleNamespace

    from dml.training.objective import StepRecord

    distances = torch.tensor([[0.0, 0.5, 1.0], [0.5, 0.0, 1.5], [1.0, 1.5, 0.0]])
    labels = torch.tensor([0, 0, 1])
    record = StepRecord(labels, labels, dim=8, distances=distances, tuples=None)
    module = SimpleNamespace(objective=SimpleNamespace(last_step=record), log=lambda *a, **k: None)
    trainer = SimpleNamespace(optimizers=[], log_every_n_steps=50, global_step=3)
    diag = TrainingDiagnostics()
    for _ in range(2):
        diag.on_train_batch_end(trainer, module, None, None, 0)
    assert {k: int(v.sum()) for k, v in diag.batch.counts().items()} == {
        "positive": 1,
        "negative": 2,
    }
