"""`dml-train trainer=ddp` with 2 CPU processes (gloo): the run finishes, metrics are computed on the
whole eval set once and logged once, and the results are written once."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dml.training.evaluate_checkpoint import evaluate_checkpoint

FAST = (
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "eval.before_training=false",
    "eval.raw_baseline=false",
)

# synthetic images whose test split (11 classes x 3 modes x 7 images = 231) does not divide by 2
ODD_EVAL_SET = (
    "dataset=synthetic",
    "dataset.train.num_classes=22",
    "dataset.test.num_classes=22",
    "dataset.test.images_per_mode=7",
)
EVAL_SIZE = 231


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "dml.cli.train", *args, f"hydra.run.dir={tmp_path / 'run'}"]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)


def _eval_rows(path: Path, key: str) -> list[str]:
    with path.open() as f:
        return [row[key] for row in csv.DictReader(f) if row.get(key)]


@pytest.mark.slow
def test_two_process_cpu_ddp_run_logs_each_metric_once(tmp_path):
    proc = _run(
        tmp_path,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "logger=csv",
        "loss=margin",
        "sampler=distance_weighted",
        "xbm.memory_size=256",
        *ODD_EVAL_SET,
        *FAST,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    run = tmp_path / "run"
    metrics_csv = run / "csv" / "metrics.csv"
    rows = _eval_rows(metrics_csv, "eval/map@r")
    assert len(rows) == 2  # one per epoch, written by rank 0 only
    assert [float(n) for n in _eval_rows(metrics_csv, "eval/num_queries")] == [EVAL_SIZE] * 2
    with metrics_csv.open() as f:
        header = next(csv.reader(f))
    assert len(header) == len(set(header))
    result = json.loads((run / "results.json").read_text())
    assert result["epochs"] == 2 and result["metrics"]["map@r"] == pytest.approx(
        float(rows[-1]), abs=1e-6
    )
    assert proc.stdout.count("Final metrics") == 1
    # one process re-embedding the whole eval set with the final weights gets the same numbers:
    # no item was dropped or counted twice across the two ranks' shares
    single, _ = evaluate_checkpoint(run / "checkpoints" / "last.ckpt")
    assert single["num_queries"] == EVAL_SIZE
    for key in ("map@r", "recall@1", "r_precision"):
        assert result["metrics"][key] == pytest.approx(single[key], abs=1e-4)
