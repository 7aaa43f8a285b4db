"""`TrainingDiagnostics`: learning rates, sampled-distance histograms and training curves."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from dml.training.callbacks.common import due, log_images_to_wandb, plots_dir, wandb_loggers
from dml.viz.figures import save_png
from dml.viz.histograms import BINS, DistanceHistograms, bin_edges, bin_index, distance_counts
from dml.viz.sampled_distances import sampled_distances_figure
from dml.viz.training_curves import training_curves_figure

log = logging.getLogger("dml")

TRAINING_PLOTS = ("sampled_distances", "training_curves")


class TrainingDiagnostics(pl.Callback):
    """What training does, step by step.

    Every step: `train/lr/<group>` for each optimizer parameter group; the distances of the tuples
    the sampler picked and of every pair of the batch (the objective's `StepRecord`) are added to fixed-bin histograms (on the device, no sync). Every
    `log_every_n_steps` (default: the trainer's): W&B histograms `train/distances/picked_<kind>
    (<strategy>)` and `train/distances/batch_<kind>`, the per-class beta of the margin loss when it
    has one, and a point of the training curves (loss, learning rates, the loss's stats: beta,
    active share). Every evaluation: a point of the `eval/<monitor>` curve (monitor: the run's
    `monitor` metric, e.g. map@r), drawn first. Pictures `sampled_distances.png` (the last epoch's histograms) and
    `training_curves.png` go to `<dirpath>/` at the end of training, and to `<dirpath>/epoch_NNN/`
    every `every_n_epochs` epochs.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        every_n_epochs: int = 0,
        plots: Sequence[str] = TRAINING_PLOTS,
        bins: int = BINS,
        log_every_n_steps: int | None = None,
        log_to_wandb: bool = True,
        monitor: str | None = None,
    ) -> None:
        unknown = set(plots) - set(TRAINING_PLOTS)
        if unknown:
            raise ValueError(
                f"unknown training plot(s) {sorted(unknown)}; choose from {list(TRAINING_PLOTS)}"
            )
        self.dirpath = dirpath
        self.every_n_epochs = int(every_n_epochs)
        self.plots = tuple(plots)
        self.bins = int(bins)
        self.log_every_n_steps = log_every_n_steps
        self.log_to_wandb = bool(log_to_wandb)
        self.monitor = monitor
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.picked = DistanceHistograms(self.bins)  # this epoch, by kind
        self.batch = DistanceHistograms(self.bins)
        self.window = DistanceHistograms(self.bins)  # since the last W&B histogram
        self.last_epoch_counts: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
        self.strategies: dict[str, str] = {}
        self.dim: int | None = None
        self.final: dict[str, Path] = {}
        self._upper: torch.Tensor | None = None
        self._seen: Any = None  # the last StepRecord counted
        self._to_wandb = False

    # -- collection --
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._to_wandb = (
            self.log_to_wandb and trainer.is_global_zero and bool(wandb_loggers(trainer))
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.picked.reset()
        self.batch.reset()
        self.strategies = pl_module.objective.strategies()

    def _add_batch_pairs(self, distances: torch.Tensor, labels: torch.Tensor) -> None:
        n = len(labels)
        if (
            self._upper is None
            or self._upper.shape[0] != n
            or self._upper.device != distances.device
        ):
            self._upper = torch.ones(n, n, dtype=torch.bool, device=distances.device).triu_(1)
        same = labels[:, None] == labels[None, :]
        index = bin_index(distances, self.bins)
        for kind, mask in (("positive", same & self._upper), ("negative", ~same & self._upper)):
            counts = distance_counts(distances, self.bins, mask, index)
            self.batch.add_counts(kind, counts)
            if self._to_wandb:
                self.window.add_counts(f"batch_{kind}", counts)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = pl_module.objective.last_step
        if step is not None and step is not self._seen:  # a skipped (NaN) step publishes none
            self._seen = step
            self.dim = step.dim
            for kind, values in step.picked().items():
                counts = self.picked.add(kind, values)
                if self._to_wandb:
                    self.window.add_counts(
                        f"picked_{kind} ({self.strategies.get(kind, kind)})", counts
                    )
            batch_pairs = step.batch_pairs()
            if batch_pairs is not None:
                self._add_batch_pairs(*batch_pairs)
        lrs = self._learning_rates(trainer)
        for name, lr in lrs.items():
            pl_module.log(f"train/{name}", lr, on_step=True, on_epoch=False)
        every = int(self.log_every_n_steps or trainer.log_every_n_steps or 1)
        if trainer.global_step % every == 0 or trainer.global_step == 1:
            self._record(trainer, pl_module, outputs, lrs)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A point of the `eval/<monitor>` curve per evaluation while training."""
        record = getattr(pl_module, "last_eval", None)
        if trainer.sanity_checking or not self.monitor or record is None:
            return
        value = record.metrics.get(self.monitor)
        points = self.history.setdefault(f"eval/{self.monitor}", [])
        if value is not None and np.isfinite(value) and (not points or points[-1][0] < record.step):
            points.append((int(record.step), float(value)))

    @staticmethod
    def _learning_rates(trainer: pl.Trainer) -> dict[str, float]:
        out = {}
        for i, opt in enumerate(trainer.optimizers):
            for j, group in enumerate(opt.param_groups):
                name = group.get("name") or (
                    f"group{j}" if len(trainer.optimizers) == 1 else f"opt{i}_group{j}"
                )
                out[f"lr/{name}"] = float(group["lr"])
        return out

    def _record(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        lrs: Mapping[str, float],
    ) -> None:
        """One point of the training curves, and the W&B histograms of the steps since the last one."""
        step = int(trainer.global_step)
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        values: dict[str, float] = {}
        if torch.is_tensor(loss) and loss.numel() == 1:
            values["loss"] = float(loss.detach())
        values.update(lrs)
        if pl_module.objective.last_step is not None:
            values.update({k: float(v) for k, v in pl_module.objective.last_step.stats.items()})
        for name, value in values.items():
            if np.isfinite(value):
                self.history.setdefault(name, []).append((step, value))
        if self._to_wandb:
            self._log_histograms(trainer, pl_module, step)
        self.window.reset()

    def _log_histograms(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int
    ) -> None:
        import wandb

        edges = bin_edges(self.bins)
        data: dict[str, Any] = {
            f"train/distances/{name}": wandb.Histogram(np_histogram=(counts, edges))
            for name, counts in self.window.counts().items()
            if counts.sum() > 0
        }
        step_record = pl_module.objective.last_step
        for name, values in (step_record.histograms if step_record is not None else {}).items():
            if values.numel() > 1:
                data[f"train/{name}"] = wandb.Histogram(values.float().cpu().numpy())
        if data:
            for logger in wandb_loggers(trainer):
                logger.log_metrics(data, step=step)

    # -- pictures --
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.picked:
            self.last_epoch_counts = (self.picked.counts(), self.batch.counts())
        if trainer.is_global_zero and due(self.every_n_epochs, trainer.current_epoch):
            self.save_plots(
                trainer,
                plots_dir(trainer, self.dirpath, trainer.current_epoch),
                trainer.current_epoch,
            )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.last_epoch_counts is None and self.picked:  # stopped before an epoch ended
            self.last_epoch_counts = (self.picked.counts(), self.batch.counts())
        if trainer.is_global_zero:
            self.final = self.save_plots(
                trainer, plots_dir(trainer, self.dirpath), max(trainer.current_epoch - 1, 0)
            )
            if self.log_to_wandb:
                log_images_to_wandb(trainer, self.final)

    def figures(self, epoch: int) -> dict[str, Callable[[], Any]]:
        """{name: function drawing it} for the pictures there is data for."""
        out: dict[str, Callable[[], Any]] = {}
        if (
            "sampled_distances" in self.plots
            and self.last_epoch_counts
            and self.last_epoch_counts[0]
        ):
            picked, batch = self.last_epoch_counts
            out["sampled_distances"] = lambda: sampled_distances_figure(
                picked, batch, self.strategies, self.dim, title=f"epoch {epoch}"
            )
        if "training_curves" in self.plots and self.history:
            out["training_curves"] = lambda: training_curves_figure(self.history)
        return out

    def save_plots(self, trainer: pl.Trainer, out_dir: Path, epoch: int) -> dict[str, Path]:
        written = {}
        for name, make in self.figures(epoch).items():
            try:
                written[name] = save_png(make(), out_dir / f"{name}.png")
            except Exception as err:  # noqa: BLE001 - a picture must never cost the run its results
                log.warning(
                    "training plots: %s failed (%s: %s); skipped", name, type(err).__name__, err
                )
        if written:
            log.info(
                "training plots: %d pictures (%s) in %s", len(written), ", ".join(written), out_dir
            )
        return written

    # -- resume: the curves continue where the checkpoint left them --
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": {k: [(int(s), float(v)) for s, v in pts] for k, pts in self.history.items()}
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {
            k: [tuple(p) for p in pts] for k, pts in state_dict.get("history", {}).items()
        }
