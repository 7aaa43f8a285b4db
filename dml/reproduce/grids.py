"""How big the reproduction is: seeds, the data and schedule of each paper's runs, the runs of a claim.

A profile fixes the seeds and, per paper, the overrides every run of that paper's claims shares (the
setting: dataset, backbone, schedule). A claim's methods add their own overrides (dml.reproduce.claims).
To run the claims on other data, change a setting here or pass `--set key=value` to dml-reproduce
(appended to every run), e.g. `--set dataset=emoji --set backbone=efficientnet_lite0`; the claims
that score two label levels (Levi et al.) need a dataset with `label_levels` (dml.data.levels).

Sizes were chosen by measurement on the 2-core build machine, which other jobs shared while
measuring (load average 7-10), so wall times were inflated; CPU times (user + sys) are the steadier
numbers. One torch thread per run and two processes at a time (`--jobs 2 --threads 1`): a digits
run of 180 steps used 24 CPU-s with one thread and 135 CPU-s with two (the threads wait on each other
on a busy machine).

- digits, small_cnn, 8 rounds of 30 steps (batches of 10 classes x 8 images), test MAP@R after
  every round: one such run as a one-seed multirun (margin + distance weighted, seed 0) took 36 CPU-s
  (167 s wall on the loaded machine) including about 8 CPU-s of process start, and moved MAP@R of
  the unseen digits from 0.48 (untrained) to 0.68.
- synthetic (10 training classes x 3 modes, 600 images), 10 epochs of 10 steps, scored at the
  dataset's, the fine and the coarse level after every epoch: 35 CPU-s (117 s wall) for triplet +
  easy positives, seed 0; fine-level MAP@R 0.83 -> 0.93, coarse 0.33 -> 0.38.

Full profile: 22 methods x 8 seeds = 176 runs; one multirun per method starts Python once, so
about 22 x 8 x 28 + 22 x 8 = 5,100 CPU-s, roughly 45 minutes of wall time on 2 idle cores with
`--jobs 2` (the issue's budget is 2 hours; a machine shared with other work takes longer). The
quick profile (44 runs of 6-8 steps) took 285 CPU-s end to end (tests/reproduce/test_quick_end_to_end.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

PAPERS = ("wu2017", "levi2020", "wang2019")

# every run: CSV logs (the curves of W3), the untrained network's eval (the curves' first point),
# the training clock, no pictures, raw-pixel baseline, NMI or progress bar (time the claims do not use)
BASE = (
    "logger=csv",
    "callbacks.eval_plots=null",
    "callbacks.training_diagnostics=null",
    "+callbacks.train_clock._target_=dml.training.callbacks.TrainClock",
    "trainer.enable_progress_bar=false",
    "eval.before_training=true",
    "eval.raw_baseline=false",
    "dataset.metrics.nmi=false",
)

_DIGITS = ("dataset=digits", "backbone=small_cnn")
# Levi et al.: classes with several modes; train on the coarse labels, score fine and coarse
_SYNTHETIC_LEVELS = (
    "dataset=synthetic",
    "backbone=small_cnn",
    "dataset.label=coarse",
    "dataset.eval_levels=[fine,coarse]",
)


@dataclass(frozen=True)
class Profile:
    """Seeds, the setting (overrides) of each paper's runs, and the trained-model batches W1 looks at."""

    name: str
    seeds: tuple[int, ...]
    settings: dict[str, tuple[str, ...]]
    negative_batches: int = 20
    extra: tuple[str, ...] = field(default=())  # --set overrides, appended to every run

    def setting(self, paper: str) -> tuple[str, ...]:
        """BASE + the paper's setting + the --set overrides, which replace any with the same key."""
        replaced = {_key(o) for o in self.extra}
        kept = [o for o in (*BASE, *self.settings[paper]) if _key(o) not in replaced]
        return (*kept, *self.extra)


FULL = Profile(
    name="full",
    seeds=tuple(range(8)),
    settings={
        "wu2017": (*_DIGITS, "trainer.max_epochs=8", "trainer.limit_train_batches=30"),
        "levi2020": (*_SYNTHETIC_LEVELS, "trainer.max_epochs=10"),
        "wang2019": (*_DIGITS, "trainer.max_epochs=8", "trainer.limit_train_batches=30"),
    },
    negative_batches=20,
)

# every claim end to end in a few minutes: two seeds (too few for any interval to be narrow, so
# the verdicts are mostly inconclusive: this profile checks the machinery, not the claims)
QUICK = Profile(
    name="quick",
    seeds=(0, 1),
    settings={
        "wu2017": (*_DIGITS, "trainer.max_epochs=2", "trainer.limit_train_batches=4"),
        "levi2020": (*_SYNTHETIC_LEVELS, "trainer.max_epochs=2", "trainer.limit_train_batches=3"),
        "wang2019": (*_DIGITS, "trainer.max_epochs=2", "trainer.limit_train_batches=4"),
    },
    negative_batches=3,
)

PROFILES = {p.name: p for p in (FULL, QUICK)}


def _key(override: str) -> str:
    """The key an override sets: 'trainer.max_epochs=8' -> 'trainer.max_epochs', '+a.b=1' -> 'a.b'."""
    return override.split("=", 1)[0].lstrip("+~")


def _slug(overrides: tuple[str, ...]) -> str:
    """A folder-safe, readable name from overrides ('loss=margin' -> 'loss-margin'), at most 80 characters."""
    text = "_".join(re.sub(r"[^A-Za-z0-9.]+", "-", o).strip("-") for o in overrides) or "defaults"
    return text[:80]


@dataclass(frozen=True)
class RunSpec:
    """One dml-train run: the setting's and method's overrides, a seed, and its folder under `root`.

    The folder is named from the method's overrides and a hash of every override but the seed, so
    claims that need the same run share it, and a changed setting never reuses an old folder.
    """

    setting: tuple[str, ...]
    method: tuple[str, ...]
    seed: int
    root: Path

    @property
    def overrides(self) -> tuple[str, ...]:
        return (*self.setting, *self.method, f"seed={self.seed}")

    @property
    def key(self) -> str:
        digest = hashlib.sha1("\n".join((*self.setting, *self.method)).encode()).hexdigest()[:8]
        return f"{_slug(self.method)}-{digest}"

    @property
    def folder(self) -> Path:
        return self.root / "runs" / self.key / f"seed_{self.seed}"
