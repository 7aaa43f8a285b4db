"""What a run prints: dml's lines and the warnings that matter, not third-party noise (issue 19 item 8).

A tiny run with W&B (offline) and CSV, then `resume=true` on it, in-process; every warning, log
record and byte written to the console is collected and checked for the known noise, and for the
lines a user needs (where the pictures and the offline W&B run are)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from dml.training.run import train
from tests.composing import compose_train

NOISE = (
    "litlogger",  # Lightning's advert for its cloud logger
    "litmodels",  # ... and for its model registry (checkpointing on, no ModelCheckpoint)
    "LeafSpec",  # torch's deprecation, triggered by Lightning's own pytree code
    "anonymous setting",  # wandb's warning about the anonymous=None Lightning passes
    "Previous log files",  # Lightning's CSV logger on resume: the rows are kept, not deleted
    "Checkpoint directory",  # Lightning on resume=true: the run continues its own checkpoints/
    "smaller than the logging interval",  # debug=quick's 2 batches with log_every_n_steps=5
)


def _console(cfg, capfd, caplog) -> str:
    """Everything train(cfg) shows: warnings, log records, stdout and stderr, as one text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg)
    out = capfd.readouterr()
    text = "\n".join([*(str(w.message) for w in caught), caplog.text, out.out, out.err])
    caplog.clear()
    return text


def test_a_run_and_its_resume_show_no_known_noise(tmp_path, capfd, caplog, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    overrides = ["debug=tiny", "logger=many", "eval.before_training=false"]
    caplog.set_level(logging.INFO)
    first = _console(compose_train(out, [*overrides, "trainer.max_epochs=1"]), capfd, caplog)
    resumed = _console(
        compose_train(out, [*overrides, "trainer.max_epochs=2", "resume=true"]), capfd, caplog
    )
    for text in (first, resumed):
        shown = [noise for noise in NOISE if noise in text]
        assert not shown, shown
        # the picture lines add up to the pictures in plots/
        named = [
            line.split("(", 1)[1].split(")", 1)[0].split(", ")
            for line in text.splitlines()
            if "eval plots:" in line or "training plots:" in line
        ]
        pictures = {p.stem for p in (out / "plots").glob("*.png")}
        assert sorted(n for names in named for n in names) == sorted(pictures)
        # where the offline W&B run is, and how to sync it
        (line,) = [x for x in text.splitlines() if x.startswith("W&B offline run: ")]
        run = Path(line.split(": ", 1)[1].split(";", 1)[0])
        assert run.is_dir() and line.endswith(f"sync it with: wandb sync {run}")
    assert (out / "csv" / "metrics.csv").is_file()


def test_a_run_without_callbacks_shows_no_model_registry_advert(tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO)
    overrides = ["debug=tiny", "logger=none", "callbacks=none", "eval.before_training=false"]
    text = _console(compose_train(tmp_path / "run", overrides), capfd, caplog)
    shown = [noise for noise in NOISE if noise in text]
    assert not shown, shown
