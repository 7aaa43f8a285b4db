"""Lightning callbacks of a run, one file each.

- `LastCheckpoint` (last_checkpoint.py): checkpoints/last.ckpt every N steps, after every
  evaluation and always at the end of training.
- `EvalPlots` (eval_plots.py): after an evaluation (every `every_n_epochs` epochs, and at the end
  of training) the retrieval grid, 2-D projection, pair-distance histograms and Recall@K curve
  (dml.viz) go to `<run>/plots/` (periodic ones to `<run>/plots/epoch_NNN/`) and to W&B.
- `TrainingDiagnostics` (training_diagnostics.py): learning rates per parameter group as
  `train/lr/<group>`; histograms of the distances of the tuples the sampler picked (per strategy)
  against every pair of the batch (W&B, `sampled_distances.png`); loss, beta, active share and
  learning rate against the step (`training_curves.png`).
- `TrainClock` (train_clock.py): `time/train_seconds` (training wall time, evaluations left out)
  logged with each evaluation, so a metric can be drawn against time (dml-reproduce's claim W3).
- `progress_bar()` (progress.py): Lightning's progress bar (rich or tqdm) with `img/s` while
  training and `eval img/s` after an evaluation, counted over all devices.

They read what the module publishes, typed: the objective's `StepRecord` (dml.training.objective)
and the evaluator's `EvalRecord` (dml.training.evaluation).
"""

from dml.training.callbacks.eval_plots import EvalPlots
from dml.training.callbacks.last_checkpoint import LastCheckpoint
from dml.training.callbacks.progress import (
    ImageRate,
    ImagesPerSecondRich,
    ImagesPerSecondTQDM,
    progress_bar,
)
from dml.training.callbacks.train_clock import TrainClock
from dml.training.callbacks.training_diagnostics import TRAINING_PLOTS, TrainingDiagnostics

__all__ = [
    "TRAINING_PLOTS",
    "EvalPlots",
    "ImageRate",
    "ImagesPerSecondRich",
    "ImagesPerSecondTQDM",
    "LastCheckpoint",
    "TrainClock",
    "TrainingDiagnostics",
    "progress_bar",
]
