"""TrainClock: the training wall time at each evaluation, so a metric can be drawn against time (claim W3).

Lightning's CSV logger records the step and epoch of each evaluation but not when it happened. This
callback logs `time/train_seconds` with the eval metrics: the seconds spent training so far minus
the time spent evaluating, so every method is timed on its training alone (the clock starts once
the loaders are set up, so building data, such as a frozen trunk's feature cache, does not count). Its count travels in
the checkpoints, so a killed and resumed run continues its clock instead of starting it again.
dml-reproduce adds it to each run with `+callbacks.train_clock._target_=dml.training.callbacks.TrainClock`.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl

KEY = "time/train_seconds"


class TrainClock(pl.Callback):
    """Logs `time/train_seconds` (training wall time so far, evaluations excluded) at each evaluation."""

    def __init__(self) -> None:
        self.before = 0.0  # seconds of earlier sessions of this run (from the checkpoint)
        self._start: float | None = None
        self._eval_seconds = 0.0
        self._eval_start: float | None = None
        self._at_eval: float | None = None

    def seconds(self) -> float:
        """Training seconds so far (0 before fit starts)."""
        if self._start is None:
            return self.before
        running = time.perf_counter() - self._start - self._eval_seconds
        if self._eval_start is not None:  # inside an evaluation: it does not count
            running -= time.perf_counter() - self._eval_start
        return self.before + running

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the loaders are set up: building data (a frozen trunk's feature cache) is not training
        self._start, self._eval_seconds, self._eval_start = time.perf_counter(), 0.0, None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._at_eval = self.seconds()
        self._eval_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._at_eval is not None and not trainer.sanity_checking:
            pl_module.log(KEY, float(self._at_eval), on_step=False, on_epoch=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._eval_start is not None:
            self._eval_seconds += time.perf_counter() - self._eval_start
        self._eval_start = None

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self.seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before = float(state_dict.get("train_seconds", 0.0))
