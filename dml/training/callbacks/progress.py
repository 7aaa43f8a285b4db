"""`progress_bar()`: Lightning's progress bar (rich or tqdm) with `img/s` while training and
`eval img/s` after an evaluation, counted over all devices."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar


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
