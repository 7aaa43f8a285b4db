"""`LastCheckpoint`: the one owner of a run's checkpoints/last.ckpt."""

from __future__ import annotations

import os
from typing import Any

from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn


class LastCheckpoint(ModelCheckpoint):
    """Keeps ``<dirpath>/last.ckpt``: every `every_n_train_steps` steps (None: never mid-epoch), after
    each evaluation during training, and always at the end of training.

    So last.ckpt holds the weights the run's final metrics come from, and a finished run resumed with
    ``resume=true`` trains no step again. (Lightning's ``ModelCheckpoint(save_last=True)`` writes
    last.ckpt at an epoch's end only when that epoch also saved a top-k checkpoint, and at the end
    of training only when it never saved one, so a run whose last epoch was not its best kept an
    older last.ckpt.) The one owner of last.ckpt: the top-k callback keeps ``save_last: false``.
    """

    def __init__(
        self, dirpath: str | os.PathLike | None = None, every_n_train_steps: int | None = None
    ) -> None:
        if every_n_train_steps is not None and (
            isinstance(every_n_train_steps, bool) or int(every_n_train_steps) < 1
        ):
            raise ValueError(
                f"callbacks.last_checkpoint.every_n_train_steps={every_n_train_steps} is not valid: expected a "
                "positive integer, or null to write last.ckpt after evaluations and at the end only"
            )
        super().__init__(
            dirpath=dirpath,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )
        self.every = int(every_n_train_steps or 0)
        self.saved_step: int | None = None  # global step of this process's latest save

    @staticmethod
    def _fitting(trainer: Any) -> bool:
        return (
            trainer.state.fn == TrainerFn.FITTING
            and not trainer.sanity_checking
            and not trainer.fast_dev_run
        )

    def save(self, trainer: Any) -> None:
        """Write last.ckpt now (on every rank's call; Lightning writes on rank 0)."""
        self.last_model_path = os.path.join(
            str(self.dirpath), self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION
        )
        trainer.save_checkpoint(self.last_model_path, self.save_weights_only)
        self.saved_step = int(trainer.global_step)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = int(trainer.global_step)
        if (
            self.every
            and self._fitting(trainer)
            and step % self.every == 0
            and self.saved_step != step
        ):
            self.save(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Nothing: last.ckpt follows the epoch's evaluation (on_validation_end) and the end of training."""

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._fitting(trainer):
            self.save(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        # always: the loop's state has moved on (epoch completed, schedulers stepped) since any save
        if self._fitting(trainer):
            self.save(trainer)
