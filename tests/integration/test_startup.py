"""--help and errors that the config or the arguments alone decide answer without importing torch
(issue 19: `dml-data --help` took 4-5 s, `dml-train trainer.max_epochs=abc` 6.7 s, all of it torch).

Each entry point runs in a fresh interpreter; an atexit hook reports whether `torch` is in
sys.modules when the process ends, so the test reads a fact, not a time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules, file=sys.stderr))\n"
    "from dml.cli.{module} import main\n"
    "sys.exit(main())\n"
)


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module), *args],
        cwd=cwd,
        env=dict(os.environ, WANDB_MODE="offline"),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("module", "args", "code"),
    [
        ("data", ("--help",), 0),
        ("data", ("download", "--help"), 0),
        ("data", ("check", "imagenet"), 2),  # an unknown dataset name
        ("data", ("download", "cars196"), 2),  # a hand-only dataset: the note says how
        ("train", ("--help",), 0),
        ("train", ("trainer.max_epochs=abc",), 2),
        ("train", ("loss=nope",), 1),  # Hydra's own error for an unknown choice
        ("eval", ("--help",), 0),
        ("eval", ("nockpt",), 2),
        ("report", ("--help",), 0),
    ],
)
def test_answers_without_importing_torch(module, args, code, tmp_path):
    run_dir = ("hydra.run.dir=run",) if module == "train" else ()
    proc = _run(module, *args, *run_dir, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "torch imported: False" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # a config error leaves no run folder


def test_the_probe_sees_torch_when_it_is_imported(tmp_path):
    # guards the test above: a command that needs torch (checking a dataset folder) reports it
    proc = _run("data", "check", "folder", "--root", str(tmp_path / "none"), cwd=tmp_path)
    assert "torch imported: True" in proc.stderr, proc.stderr[-2000:]
