"""Non-finite steps are skipped and counted, or stop the run naming the step; secrets are masked."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from dml.training.checkpointing import read_checkpoint
from dml.training.guards import NonFiniteError, NonFiniteGuard, redact_secrets
from dml.training.module import DMLModule
from dml.training.objective import TrainingObjective
from dml.training.run import train

# tiny_run (tests/conftest.py) of 3 steps without callbacks
GUARDED = ("callbacks=none", "trainer.limit_train_batches=3")


# ---- unit ------------------------------------------------------------------------------------
def test_finite_values_pass():
    guard = NonFiniteGuard("stop")
    assert not guard.check("loss", "step 0", torch.tensor(1.0), torch.ones(3, 2))
    assert guard.skipped == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_skip_counts_the_step_and_logs_it(bad, caplog):
    guard = NonFiniteGuard("skip")
    with caplog.at_level(logging.WARNING, logger="dml"):
        assert guard.check("loss", "global step 7 (epoch 1, batch 2)", torch.tensor(bad))
    assert guard.skipped == 1
    assert (
        "non-finite loss at global step 7 (epoch 1, batch 2): step skipped (1 skipped so far)"
        in caplog.text
    )


def test_stop_names_the_step_and_the_fix():
    guard = NonFiniteGuard("stop")
    embeddings = torch.ones(4, 3)
    embeddings[2, 1] = float("nan")
    with pytest.raises(
        NonFiniteError, match=r"non-finite embeddings at global step 3 .*nonfinite=skip"
    ):
        guard.check("embeddings", "global step 3 (epoch 0, batch 3)", embeddings)


def test_patience_stops_a_run_that_only_skips():
    guard = NonFiniteGuard("skip", patience=2)
    nan = torch.tensor(float("nan"))
    guard.check("loss", "a", nan)
    guard.check("loss", "b", nan)
    with pytest.raises(NonFiniteError, match="3th skipped step in a row: the run has diverged"):
        guard.check("loss", "c", nan)


def test_any_rank_decision_makes_every_rank_skip():
    guard = NonFiniteGuard("skip")
    assert guard.check(
        "loss", "a", torch.tensor(1.0), any_rank=lambda bad: True
    )  # another rank saw NaN


def test_before_optimizer_step_drops_gradients_of_a_skipped_or_nan_step():
    p = torch.nn.Parameter(torch.ones(3))
    guard = NonFiniteGuard("skip")
    p.grad = torch.tensor([1.0, float("nan"), 0.0])
    guard.before_optimizer_step([p], "step 1")
    assert p.grad is None and guard.skipped == 1
    p.grad = torch.ones(3)
    guard.before_optimizer_step([p], "step 2")
    assert torch.equal(p.grad, torch.ones(3)) and guard.in_a_row == 0
    guard.check("loss", "step 3", torch.tensor(float("nan")))  # flagged in training_step
    p.grad = torch.ones(3)
    guard.before_optimizer_step([p], "step 3")
    assert p.grad is None and guard.skipped == 2


def test_zero_loss_reaches_every_parameter_with_zero_gradient():
    net = torch.nn.Linear(3, 2)
    NonFiniteGuard.zero_loss(net.parameters()).backward()
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="nonfinite='maybe'"):
        NonFiniteGuard("maybe")
    with pytest.raises(ValueError, match="nonfinite_patience=-1"):
        NonFiniteGuard("skip", patience=-1)


def test_redact_secrets_masks_secret_keys_only():
    config = {
        "logger": {"wandb": {"api_key": "abc", "project": "dml"}},
        "token": "t",
        "tags": [{"password": "p"}],
        "lr": 0.1,
        "secret": None,
    }
    assert redact_secrets(config) == {
        "logger": {"wandb": {"api_key": "***", "project": "dml"}},
        "token": "***",
        "tags": [{"password": "***"}],
        "lr": 0.1,
        "secret": None,
    }


# ---- a real run with NaN injected --------------------------------------------------------------
def _inject(monkeypatch, faults: dict[int, str]) -> None:
    """At global step k make faults[k] non-finite: the loss, the embeddings, or only the gradients."""
    gather, objective = DMLModule.gather_batch, TrainingObjective.__call__
    step = [0]  # the global step of the batch being trained on

    def gather_batch(self, embeddings, labels):
        step[0] = self.global_step
        embeddings, labels = gather(self, embeddings, labels)
        if faults.get(self.global_step, faults.get(-1)) == "embeddings":
            embeddings = embeddings * float("nan")
        return embeddings, labels

    def compute_loss(self, embeddings, labels):
        loss = objective(self, embeddings, labels)
        fault = faults.get(step[0], faults.get(-1))
        if fault == "loss":
            return loss * float("nan")
        if fault == "gradient":  # finite forward, NaN gradient: d/dx sqrt(x) at 0 is inf, times 0
            return loss + 0.0 * torch.sqrt(embeddings[0, 0] * 0.0)
        return loss

    monkeypatch.setattr(DMLModule, "gather_batch", gather_batch)
    monkeypatch.setattr(TrainingObjective, "__call__", compute_loss)


def test_nan_loss_embeddings_and_gradients_are_skipped_and_counted(
    compose_cfg, tiny_run, monkeypatch, caplog
):
    _inject(monkeypatch, {1: "loss", 2: "embeddings", 3: "gradient"})
    with caplog.at_level(logging.WARNING, logger="dml"):
        result = train(
            compose_cfg(*tiny_run, *GUARDED, "trainer.limit_train_batches=5", "nonfinite=skip")
        )
    assert result["nonfinite_steps"] == 3
    assert result["global_step"] == 5
    assert all(v == v for v in result["metrics"].values())  # finite metrics (NaN != NaN)
    for what, step in (("loss", 1), ("embeddings", 2), ("gradient", 3)):
        assert f"non-finite {what} at global step {step}" in caplog.text


def test_skipped_steps_never_change_the_weights(compose_cfg, tiny_run, monkeypatch):
    _inject(monkeypatch, {-1: "loss"})  # every step
    cfg = compose_cfg(
        *tiny_run,
        *GUARDED,
        "loss=margin",
        "nonfinite=skip",
        "nonfinite_patience=0",
        "callbacks=default",
    )
    result = train(cfg)
    assert result["nonfinite_steps"] == 3
    ckpt = read_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert ckpt["dml"]["nonfinite_steps"] == 3
    assert ckpt["optimizer_states"][0]["state"] == {}  # the optimizer never stepped
    assert ckpt["state_dict"]["loss.beta"].item() == pytest.approx(1.2)  # nor did beta move
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )


def test_nonfinite_stop_names_the_step(compose_cfg, tiny_run, monkeypatch):
    _inject(monkeypatch, {2: "loss"})
    with pytest.raises(
        NonFiniteError, match=r"non-finite loss at global step 2 \(epoch 0, batch 2\)"
    ):
        train(compose_cfg(*tiny_run, *GUARDED, "nonfinite=stop"))
