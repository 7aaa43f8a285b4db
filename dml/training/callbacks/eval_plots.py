"""`EvalPlots`: pictures of the eval embeddings after evaluations (dml.viz)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

from dml.training.callbacks.common import due, log_images_to_wandb, plots_dir, save_final
from dml.viz.eval_plots import EVAL_PLOTS, EvalPlotOptions, save_eval_plots

log = logging.getLogger("dml")


def _run_title(pl_module: pl.LightningModule, epoch: int) -> str:
    config = pl_module.hparams.get("config") or {}
    name = (config.get("dataset") or {}).get("name")
    return f"{name}, epoch {epoch}" if name else f"epoch {epoch}"


def _eval_datasets(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """The eval split datasets by name (for the retrieval grid's images)."""
    if trainer.datamodule is not None:
        return dict(trainer.datamodule.eval_sets)
    loaders = trainer.val_dataloaders
    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    names = pl_module.evaluator.split_names
    return {
        n: dl.dataset
        for n, dl in zip(names, loaders, strict=False)
        if dl is not None and hasattr(dl, "dataset")
    }


class EvalPlots(pl.Callback):
    """Pictures of the eval embeddings (dml.viz) after evaluation: every `every_n_epochs` epochs into
    `<dirpath>/epoch_NNN/` (0: not in between) and, at the end of training, the last evaluation's
    into `<dirpath>/` (default `<run>/plots`). Logged to W&B as images when a WandbLogger is present.

    The module must keep its last evaluation in `last_eval` (DMLModule does). Options:
    see dml.viz.eval_plots.EvalPlotOptions; `plots` picks among retrieval_grid, projection,
    pair_distances, recall_curve.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        every_n_epochs: int = 0,
        plots: Sequence[str] = EVAL_PLOTS,
        n_queries: int = 8,
        top_k: int = 5,
        projection: str = "tsne",
        max_points: int = 2000,
        max_classes: int = 20,
        tsne_iterations: int = 500,
        projection_threads: int | None = 1,
        max_k: int = 1024,
        seed: int = 0,
        log_to_wandb: bool = True,
    ) -> None:
        self.dirpath = dirpath
        self.every_n_epochs = int(every_n_epochs)
        self.options = EvalPlotOptions(
            plots=tuple(plots),
            n_queries=n_queries,
            top_k=top_k,
            projection=projection,
            max_points=max_points,
            max_classes=max_classes,
            tsne_iterations=tsne_iterations,
            projection_threads=projection_threads,
            max_k=max_k,
            seed=seed,
        )
        self.log_to_wandb = bool(log_to_wandb)
        self.last_eval_epoch: int | None = None
        self._written: tuple[int, dict[str, Path]] | None = (
            None  # (epoch, pictures) of the last save
        )
        self.final: dict[str, Path] = {}

    def _save(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, out_dir: Path
    ) -> dict[str, Path]:
        record = pl_module.last_eval
        if record is None or not record.splits:
            return {}
        splits = record.splits
        epoch = int(self.last_eval_epoch or 0)
        self.options.title = _run_title(pl_module, epoch)
        self.options.marked_ks = pl_module.evaluator.ks
        start = time.perf_counter()
        written = save_eval_plots(
            splits, out_dir, datasets=_eval_datasets(trainer, pl_module), options=self.options
        )
        log.info(  # named, so that the count adds up with the training plots' line
            "eval plots: %d pictures (%s) in %s (%.1f s)",
            len(written),
            ", ".join(written),
            out_dir,
            time.perf_counter() - start,
        )
        self._written = (epoch, written)
        return written

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.last_eval_epoch = trainer.current_epoch
        if (
            trainer.state.fn != TrainerFn.FITTING
        ):  # trainer.validate(): these are the final pictures
            self._finish(trainer, pl_module)
        elif due(self.every_n_epochs, trainer.current_epoch):
            written = self._save(
                trainer, pl_module, plots_dir(trainer, self.dirpath, trainer.current_epoch)
            )
            if self.log_to_wandb:
                log_images_to_wandb(trainer, written)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self.last_eval_epoch is not None:
            self._finish(trainer, pl_module)

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out_dir = plots_dir(trainer, self.dirpath)
        if (
            self._written is not None
            and self._written[0] == self.last_eval_epoch
            and self._written[1]
        ):
            self.final = save_final(self._written[1], out_dir)  # already drawn and logged
            return
        self.final = self._save(trainer, pl_module, out_dir)
        if self.log_to_wandb:
            log_images_to_wandb(trainer, self.final)
