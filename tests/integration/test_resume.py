"""Resume after a kill: same steps, same batches, same weights and metrics as an uninterrupted run.

In-process: one uninterrupted run keeps a checkpoint after every step; runs resumed from
mid-epoch, last-batch and end-of-epoch checkpoints must end bit-identical to it. As
subprocesses: `dml-train` killed with SIGKILL mid-epoch resumes with `resume=true`, and a kill
during a checkpoint save leaves a loadable last.ckpt.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dml.training.checkpointing import read_checkpoint
from dml.training.module import DMLModule
from dml.training.run import train
from tests.composing import compose_train

# a tiny but complete run: margin loss with a learnable beta, distance weighted sampling (its own
# generator), a cosine scheduler; 2 epochs of 3 batches of 3 classes x 4 images
TINY = (
    "debug=tiny",
    "loss=margin",
    "sampler=distance_weighted",
    "scheduler=cosine",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    # bit-identical resumes need deterministic inputs: no random warps (README: with random
    # augmentations a resumed run continues statistically equivalent)
    "dataset.transform.train.affine=null",
)
STEPS = 2 * 3


def _compose(out: Path, *overrides: str):
    return compose_train(out, [*TINY, *overrides])


def _recorded_train(cfg) -> tuple[dict, list[tuple]]:
    """train(cfg), recording (global step, labels, input checksum) of every training step."""
    seen: list[tuple] = []
    original = DMLModule.training_step

    def recording(self, batch, batch_idx):
        seen.append(
            (self.global_step, tuple(batch[1].tolist()), round(float(batch[0].double().sum()), 6))
        )
        return original(self, batch, batch_idx)

    DMLModule.training_step = recording
    try:
        return train(cfg), seen
    finally:
        DMLModule.training_step = original


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run that keeps every step's and every epoch's checkpoint."""
    out = tmp_path_factory.mktemp("reference")
    keep = (
        "{_target_:pytorch_lightning.callbacks.ModelCheckpoint,dirpath:"
        + str(out / "steps")
        + ",filename:'s{step}',auto_insert_metric_name:false,save_top_k:-1,every_n_train_steps:1}"
    )
    cfg = _compose(out, "callbacks.model_checkpoint.save_top_k=-1", f"+callbacks.keep_all={keep}")
    result, batches = _recorded_train(cfg)
    return out, result, batches


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def test_uninterrupted_run_checkpoint_holds_the_training_state(reference):
    out, result, batches = reference
    assert result["global_step"] == STEPS and result["epochs"] == 2
    assert [b[0] for b in batches] == list(range(STEPS))
    ckpt = read_checkpoint(out / "checkpoints" / "last.ckpt")  # weights_only=True
    assert "loss.beta" in ckpt["state_dict"]  # the margin loss's learnable beta
    assert len(ckpt["optimizer_states"][0]["param_groups"]) == 3  # backbone, head, loss
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 2
    assert ckpt["DMLDataModule"]["batch_sampler"] == {"epoch": 2, "position": 0, "seed": 0}
    assert set(ckpt["dml"]["rng"]) >= {"torch", "numpy", "python"}
    assert ckpt["dml"]["sampler"]["generators"]  # the tuple sampler's own torch.Generator
    mid = read_checkpoint(out / "steps" / "s1.ckpt")
    assert mid["DMLDataModule"]["batch_sampler"] == {"epoch": 0, "position": 1, "seed": 0}
    end = read_checkpoint(
        out / "steps" / "s3.ckpt"
    )  # epoch 0's last batch: resumes at epoch 1's first
    assert end["DMLDataModule"]["batch_sampler"] == {"epoch": 1, "position": 0, "seed": 0}


def test_two_runs_with_the_same_seed_are_identical(reference, tmp_path):
    out, result, batches = reference
    again, batches_again = _recorded_train(_compose(tmp_path))
    assert again["metrics"] == result["metrics"]
    assert batches_again == batches
    ref, new = (
        _weights(out / "checkpoints" / "last.ckpt"),
        _weights(tmp_path / "checkpoints" / "last.ckpt"),
    )
    assert all(torch.equal(ref[k], new[k]) for k in ref)


@pytest.mark.parametrize(
    "checkpoint",
    [
        "steps/s1.ckpt",  # mid-epoch 0, after its 1st batch
        "checkpoints/epoch_000.ckpt",  # end of epoch 0, after evaluation
        pytest.param(
            "steps/s3.ckpt", marks=pytest.mark.slow
        ),  # epoch 0's last batch, before evaluation
        pytest.param("steps/s5.ckpt", marks=pytest.mark.slow),  # mid-epoch 1
    ],
)
def test_resumed_run_ends_identical_to_the_uninterrupted_one(
    reference, tmp_path, checkpoint, monkeypatch
):
    out, result, batches = reference
    start = read_checkpoint(out / checkpoint)["global_step"]
    loads, real_load = [], torch.load

    def spy(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    resumed, seen = _recorded_train(_compose(tmp_path, f"ckpt_path={out / checkpoint}"))
    assert loads and all(
        w is True for w in loads
    )  # our check and Lightning's restore: weights_only=True
    assert resumed["resumed_from"] == str(out / checkpoint)
    assert resumed["global_step"] == STEPS and resumed["epochs"] == 2
    assert seen == batches[start:]  # the same batches, in the same order, each once
    assert resumed["metrics"] == result["metrics"]
    ref, new = (
        _weights(out / "checkpoints" / "last.ckpt"),
        _weights(tmp_path / "checkpoints" / "last.ckpt"),
    )
    assert all(torch.equal(ref[k], new[k]) for k in ref)


# ---- subprocesses: SIGKILL --------------------------------------------------------------------
# dml-train whose fsync pauses, so a kill lands in the middle of writing a checkpoint
_SLOW_FSYNC = """
import os, time
fsync = os.fsync
def slow(fd):
    time.sleep(DELAY)
    fsync(fd)
os.fsync = slow
from dml.cli.train import main
main()
"""
KILLED = (*TINY, "trainer.limit_train_batches=4", "callbacks.last_checkpoint.every_n_train_steps=1")


def _env() -> dict[str, str]:
    return dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", PYTHONUNBUFFERED="1")


def _global_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> Path:
    """A dml-train run killed with SIGKILL mid-epoch, while it writes its 2nd (or a later) checkpoint."""
    run_dir = tmp_path_factory.mktemp("killed") / "run"
    run_dir.mkdir()
    ckpts = run_dir / "checkpoints"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SLOW_FSYNC.replace("DELAY", "3.0"),
            *KILLED,
            f"hydra.run.dir={run_dir}",
        ],
        cwd=run_dir.parent,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    # last.ckpt exists and its replacement is being written: each fsync pauses 3 s, so the kill lands there
    while not ((ckpts / "last.ckpt").is_file() and any(ckpts.glob(".last.ckpt.*.tmp"))):
        if proc.poll() is not None:
            pytest.fail(
                f"dml-train ended (rc {proc.returncode}) before the kill:\n{proc.stdout.read()[-3000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for a checkpoint save")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return run_dir


def test_sigkill_during_a_checkpoint_save_leaves_last_ckpt_loadable(killed_run):
    ckpts = killed_run / "checkpoints"
    assert list(ckpts.glob(".last.ckpt.*.tmp")), "the kill landed during a save"
    ckpt = read_checkpoint(ckpts / "last.ckpt")  # whole, and loads with weights_only=True
    assert 1 <= ckpt["global_step"] < 4  # mid-epoch 0
    assert not (killed_run / "results.json").exists()


def test_sigkill_mid_epoch_then_resume_finishes_with_the_same_steps(killed_run):
    last = killed_run / "checkpoints" / "last.ckpt"
    killed_at = _global_step(last)
    resumed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dml.cli.train import main; main()",
            *KILLED,
            f"hydra.run.dir={killed_run}",
            "resume=true",
        ],
        cwd=killed_run.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    result = json.loads((killed_run / "results.json").read_text())
    assert result["resumed_from"] == str(last)
    assert (
        result["global_step"] == 2 * 4 and result["epochs"] == 2
    )  # what an uninterrupted run does
    assert result["metrics"] and all(math.isfinite(v) for v in result["metrics"].values())
    assert _global_step(last) == 2 * 4 > killed_at
    assert not list(last.parent.glob(".*.tmp"))  # the killed save's temporary file is cleaned up


def test_resuming_a_finished_run_trains_no_more_and_reports_its_metrics(reference, tmp_path):
    out, result, _ = reference
    again, seen = _recorded_train(
        _compose(tmp_path, f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}")
    )
    assert seen == [] and again["global_step"] == STEPS
    assert again["metrics"] == result["metrics"]  # the final weights, evaluated again
