"""What the picture callbacks share: where pictures go, when they are due, W&B image logging."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger("dml")


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


def save_final(written: dict[str, Path], out_dir: Path) -> dict[str, Path]:
    """Copy already written pictures into the final folder (the last periodic plots are the final ones)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {name: Path(shutil.copy2(path, out_dir / path.name)) for name, path in written.items()}
