"""Lightning callbacks that show the embedding and its training: eval pictures, training diagnostics,
and a progress bar with images per second.

- `EvalPlots`: after an evaluation (every `every_n_epochs` epochs, and at the end of training) the
  retrieval grid, 2-D projection, pair-distance histograms and Recall@K curve (dml.viz) go to
  `<run>/plots/` (periodic ones to `<run>/plots/epoch_NNN/`) and to W&B when a WandbLogger is used.
- `TrainingDiagnostics`: learning rates per parameter group as `train/lr/<group>`; histograms of
  the distances of the tuples the sampler picked (per strategy) against every pair of the batch
  (to W&B, and `sampled_distances.png`); loss, beta, active share and learning rate against the
  step (`training_curves.png`).
- `progress_bar()`: Lightning's progress bar (rich or tqdm) with `img/s` while training and
  `eval img/s` after an evaluation, counted over all devices.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.trainer.states import TrainerFn

from dml.viz.eval_plots import EVAL_PLOTS, EvalPlotOptions, save_eval_plots
from dml.viz.figures import save_png
from dml.viz.histograms import BINS, DistanceHistograms, bin_edges, bin_index, distance_counts
from dml.viz.sampled_distances import sampled_distances_figure
from dml.viz.training_curves import training_curves_figure

log = logging.getLogger("dml")

TRAINING_PLOTS = ("sampled_distances", "training_curves")


# ---- shared helpers ---------------------------------------------------------------------------
def plots_dir(trainer: pl.Trainer, dirpath: str | None, epoch: int | None = None) -> Path:
    """`dirpath` (default `<trainer.default_root_dir>/plots`), or its `epoch_NNN` sub-folder."""
    base = Path(dirpath) if dirpath else Path(trainer.default_root_dir) / "plots"
    return base if epoch is None else base / f"epoch_{epoch:03d}"


def due(every_n_epochs: int, epoch: int) -> bool:
    """True when epoch (0-based) ends a period of `every_n_epochs` (0 or less: never)."""
    return every_n_epochs > 0 and (epoch + 1) % every_n_epochs == 0


def wandb_loggers(trainer: pl.Trainer) -> list[WandbLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def log_images_to_wandb(
    trainer: pl.Trainer, paths: Mapping[str, Path], prefix: str = "plots"
) -> None:
    """Each PNG as a wandb.Image under `<prefix>/<name>` at the current global step."""
    for logger in wandb_loggers(trainer):
        for name, path in paths.items():
            try:
                logger.log_image(
                    key=f"{prefix}/{name}", images=[str(path)], step=trainer.global_step
                )
            except Exception as err:  # noqa: BLE001 - a logging hiccup must not stop training
                log.warning("could not log %s to W&B: %s", path, err)


def _run_title(pl_module: pl.LightningModule, epoch: int) -> str:
    config = getattr(pl_module, "hparams", {}).get("config", {}) or {}
    name = (config.get("dataset") or {}).get("name")
    return f"{name}, epoch {epoch}" if name else f"epoch {epoch}"


def _eval_datasets(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """The eval split datasets by name (for the retrieval grid's images)."""
    datamodule = getattr(trainer, "datamodule", None)
    sets = getattr(datamodule, "eval_sets", None)
    if sets:
        return dict(sets)
    loaders = trainer.val_dataloaders
    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    names = pl_module.evaluator.split_names
    return {
        n: dl.dataset
        for n, dl in zip(names, loaders, strict=False)
        if dl is not None and hasattr(dl, "dataset")
    }


def _save_final(written: dict[str, Path], out_dir: Path) -> dict[str, Path]:
    """Copy already written pictures into the final folder (the last periodic plots are the final ones)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {name: Path(shutil.copy2(path, out_dir / path.name)) for name, path in written.items()}


# ---- eval pictures ----------------------------------------------------------------------------
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
        log.info(
            "eval plots: %d pictures in %s (%.1f s)",
            len(written),
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
            self.final = _save_final(self._written[1], out_dir)  # already drawn and logged
            return
        self.final = self._save(trainer, pl_module, out_dir)
        if self.log_to_wandb:
            log_images_to_wandb(trainer, self.final)


# ---- training diagnostics ---------------------------------------------------------------------
class TrainingDiagnostics(pl.Callback):
    """What training does, step by step.

    Every step: `train/lr/<group>` for each optimizer parameter group; the distances of the tuples
    the sampler picked (`sampler.last_distances`) and of every pair of the batch
    (`module.last_batch`) are added to fixed-bin histograms (on the device, no sync). Every
    `log_every_n_steps` (default: the trainer's): W&B histograms `train/distances/picked_<kind>
    (<strategy>)` and `train/distances/batch_<kind>`, the per-class beta of the margin loss when it
    has one, and a point of the training curves (loss, learning rates, the loss's `log_stats()`:
    beta, active share). Pictures `sampled_distances.png` (the last epoch's histograms) and
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
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.picked = DistanceHistograms(self.bins)  # this epoch, by kind
        self.batch = DistanceHistograms(self.bins)
        self.window = DistanceHistograms(self.bins)  # since the last W&B histogram
        self.last_epoch_counts: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
        self.strategies: dict[str, str] = {}
        self.dim: int | None = None
        self.final: dict[str, Path] = {}
        self._upper: torch.Tensor | None = None
        self._to_wandb = False

    # -- collection --
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._to_wandb = self.log_to_wandb and trainer.is_global_zero and bool(wandb_loggers(trainer))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.picked.reset()
        self.batch.reset()
        self.strategies = pl_module.objective.strategies()
        self.dim = (
            getattr(pl_module.model, "embedding_dim", None) if hasattr(pl_module, "model") else None
        )

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
        if step is not None:
            for kind, values in step.picked().items():
                counts = self.picked.add(kind, values)
                if self._to_wandb:
                    self.window.add_counts(f"picked_{kind} ({self.strategies.get(kind, kind)})", counts)
            batch_pairs = step.batch_pairs()
            if batch_pairs is not None:
                self._add_batch_pairs(*batch_pairs)
        lrs = self._learning_rates(trainer)
        for name, lr in lrs.items():
            pl_module.log(f"train/{name}", lr, on_step=True, on_epoch=False)
        every = int(self.log_every_n_steps or trainer.log_every_n_steps or 1)
        if trainer.global_step % every == 0 or trainer.global_step == 1:
            self._record(trainer, pl_module, outputs, lrs)

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
        beta_class = getattr(getattr(pl_module, "loss", None), "beta_class", None)
        if torch.is_tensor(beta_class) and beta_class.numel() > 1:
            data["train/beta_class"] = wandb.Histogram(beta_class.detach().float().cpu().numpy())
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


# ---- progress bar with images per second ------------------------------------------------------
def _batch_images(batch: Any) -> int:
    """Number of items in a batch (the first tensor's leading dimension)."""
    if torch.is_tensor(batch):
        return int(batch.shape[0])
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_images(batch[0])
    if isinstance(batch, Mapping) and batch:
        return _batch_images(next(iter(batch.values())))
    return 0


class ImageRate:
    """Images per second over the last `window` batches (timed from batch end to batch end, so data
    loading counts), times the number of devices."""

    def __init__(self, window: int = 20) -> None:
        self.marks: deque[tuple[float, int]] = deque(maxlen=int(window) + 1)

    def start(self) -> None:
        self.marks.clear()
        self.marks.append((time.perf_counter(), 0))

    def add(self, images: int) -> None:
        if not self.marks:
            self.start()
        self.marks.append((time.perf_counter(), int(images)))

    def rate(self) -> float | None:
        if len(self.marks) < 2:
            return None
        seconds = self.marks[-1][0] - self.marks[0][0]
        images = sum(n for _, n in list(self.marks)[1:])
        return images / seconds if seconds > 0 else None


class _ImagesPerSecond:
    """Mixin for Lightning's progress bars: `img/s` (training) and `eval img/s` in the bar's metrics."""

    def __init__(self, *args: Any, window: int = 20, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.train_rate = ImageRate(window)
        self.eval_images = 0
        self.eval_start = 0.0
        self.eval_rate: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.train_rate.start()
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.train_rate.add(_batch_images(batch) * trainer.world_size)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.eval_images, self.eval_start = 0, time.perf_counter()
        super().on_validation_start(trainer, pl_module)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:  # noqa: ANN001
        self.eval_images += _batch_images(batch) * trainer.world_size
        super().on_validation_batch_end(
            trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
        )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self.eval_start
        if not trainer.sanity_checking and self.eval_images and seconds > 0:
            self.eval_rate = self.eval_images / seconds
        super().on_validation_end(trainer, pl_module)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        rate = self.train_rate.rate()
        if rate is not None:
            items["img/s"] = f"{rate:.0f}"
        if self.eval_rate is not None:
            items["eval img/s"] = f"{self.eval_rate:.0f}"
        return items


class ImagesPerSecondTQDM(_ImagesPerSecond, TQDMProgressBar):
    """Lightning's tqdm progress bar with images per second."""


class ImagesPerSecondRich(_ImagesPerSecond, RichProgressBar):
    """Lightning's rich progress bar with images per second."""


def progress_bar(style: str = "auto", window: int = 20) -> ProgressBar:
    """The progress bar callback: style rich | tqdm | auto (rich when installed, like Lightning)."""
    if style not in ("auto", "rich", "tqdm"):
        raise ValueError(f"progress bar style={style!r} is not one of auto, rich, tqdm")
    if style == "auto":
        try:
            import rich  # noqa: F401

            style = "rich"
        except ImportError:
            style = "tqdm"
    return (ImagesPerSecondRich if style == "rich" else ImagesPerSecondTQDM)(window=window)
