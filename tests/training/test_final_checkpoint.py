"""The weights behind results.json are always in the run folder: last.ckpt is the end of training,
results.json names the checkpoint its metrics came from, dml-eval on it gives the same numbers, and
resume=true on a finished run trains no step again.

The runs are made so that the last epoch is not the best one: the checkpoint callback monitors
eval/num_queries, which is the same every epoch, so only the first epoch ever counts as best.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dml.training.checkpointing import read_checkpoint
from dml.training.evaluate_checkpoint import evaluate_checkpoint
from dml.training.module import DMLModule
from dml.training.run import train
from tests.composing import compose_train

# 2 epochs of 3 batches on digits with a 4-wide CNN; the whole test split is scored (as dml-eval does)
TINY = (
    "debug=tiny",
    "trainer.limit_val_batches=null",  # the whole test split, as dml-eval scores it
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "callbacks.eval_plots=null",
    "callbacks.training_diagnostics=null",
    # a tie every epoch: epoch 0 stays the best, later epochs never save a top-k checkpoint
    "callbacks.model_checkpoint.monitor=eval/num_queries",
    # last.ckpt also after step 4, mid-way through the last epoch (6 steps in all)
    "callbacks.last_checkpoint.every_n_train_steps=4",
)
STEPS = 2 * 3


def _compose(out: Path, *overrides: str):
    return compose_train(out, [*TINY, *overrides])


def _train_counting_steps(cfg) -> tuple[dict, int]:
    """train(cfg) and the number of training steps it ran."""
    steps = []
    original = DMLModule.training_step

    def counting(self, batch, batch_idx):
        steps.append(self.global_step)
        return original(self, batch, batch_idx)

    DMLModule.training_step = counting
    try:
        return train(cfg), len(steps)
    finally:
        DMLModule.training_step = original


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    result, steps = _train_counting_steps(_compose(out))
    assert steps == STEPS
    return out, result


def test_last_ckpt_holds_the_end_of_training_when_the_last_epoch_is_not_the_best(finished_run):
    out, result = finished_run
    last = out / "checkpoints" / "last.ckpt"
    # the best epoch is the first one, not the last
    assert result["best_checkpoint"] == str(out / "checkpoints" / "epoch_000.ckpt")
    ckpt = read_checkpoint(last)
    assert ckpt["global_step"] == STEPS == result["global_step"]
    # saved after training ended: a resume starts past the last epoch
    assert ckpt["DMLDataModule"]["batch_sampler"] == {"epoch": 2, "position": 0, "seed": 0}
    assert result["last_checkpoint"] == str(last)


def test_results_json_names_the_checkpoint_of_its_metrics_and_dml_eval_reproduces_them(
    finished_run,
):
    out, result = finished_run
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics_from"] == str(out / "checkpoints" / "last.ckpt")
    metrics, _ = evaluate_checkpoint(saved["metrics_from"])
    # exactly: the same weights, the same eval split, the same scoring
    assert metrics == saved["metrics"]


def test_resume_true_on_a_finished_run_trains_no_step_and_reports_the_same_metrics(finished_run):
    out, result = finished_run
    last = out / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    resumed, steps = _train_counting_steps(_compose(out, "resume=true"))
    assert steps == 0
    assert resumed["global_step"] == STEPS and resumed["resumed_from"] == str(last)
    assert resumed["metrics"] == result["metrics"]
    assert resumed["metrics_from"] == str(last) and last.read_bytes() == before


def test_metrics_are_those_of_the_final_weights_when_training_stops_mid_epoch(tmp_path):
    # max_steps ends training after the first batch of epoch 1, before that epoch's evaluation
    result, steps = _train_counting_steps(
        _compose(tmp_path, "trainer.max_steps=4", "callbacks.last_checkpoint=null")
    )
    assert steps == 4 and result["global_step"] == 4
    assert result["last_checkpoint"] is None  # no callback keeps last.ckpt
    assert result["metrics_from"] == "final weights (not saved: callbacks.last_checkpoint is off)"
    with_last, _ = _train_counting_steps(_compose(tmp_path / "with_last", "trainer.max_steps=4"))
    assert read_checkpoint(with_last["last_checkpoint"])["global_step"] == 4
    assert with_last["metrics"] == result["metrics"]
    assert evaluate_checkpoint(with_last["metrics_from"])[0] == with_last["metrics"]
