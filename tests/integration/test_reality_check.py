"""scripts/reality_check.py --quick: the whole study pipeline (frozen trunk on the embedded emoji set,
class-disjoint folds, an Optuna search per loss, test metrics with confidence intervals, table and
picture) on a tiny budget."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reality_check.py"


def _script():
    spec = importlib.util.spec_from_file_location("reality_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_loss_has_a_search_space_and_a_config():
    script = _script()
    from dml.config import config_dir

    assert set(script.SPACES) == set(script.LOSSES) and len(script.LOSSES) == 15
    for loss in script.LOSSES:
        assert (config_dir() / "loss" / f"{loss}.yaml").is_file()


def test_confidence_interval_is_the_t_interval():
    script = _script()
    mean, half = script.confidence_interval([0.1, 0.2, 0.3, 0.4])
    # t(0.975, 3) = 3.182446; sd = 0.129099; sqrt(4) = 2
    assert mean == pytest.approx(0.25) and half == pytest.approx(3.182446 * 0.1290994 / 2, rel=1e-5)
    assert math.isnan(script.confidence_interval([0.5])[1])


def test_quick_study_writes_table_picture_and_results(tmp_path):
    script = _script()
    out = tmp_path / "rc"
    results = script.main(["--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert [r["loss"] for r in results] == ["triplet", "proxy_anchor"]
    table = (out / "table.md").read_text()
    assert "| triplet |" in table and "| proxy_anchor |" in table
    assert (out / "reality_check.png").stat().st_size > 1000
    saved = json.loads((out / "results.json").read_text())
    for r in saved["results"]:
        folds = r["test_folds"]
        assert len(folds) == 2  # --quick: 2 folds, each a model scored on the test classes
        # the best trial is picked on the validation folds only, and its test numbers are its folds'
        assert r["best_val_map@r"] == pytest.approx(sum(f["val/map@r"] for f in folds) / 2)
        assert r["test"]["map@r"]["mean"] == pytest.approx(sum(f["map@r"] for f in folds) / 2)
        assert 0 < r["test"]["map@r"]["mean"] <= 1
    # every run of the study trained the same budget on the same protocol
    logs = sorted((out / "runs").rglob("results.json"))
    studied = [p for p in logs if "frozen_trunk" not in p.parts]  # + one run for the baseline row
    assert len(studied) == 2 * 1 * 2 and len(logs) == len(studied) + 1  # losses x trials x folds
    assert "(frozen trunk features" in table and saved["frozen_trunk"]["map@r"] > 0
    configs = [json.loads(p.read_text())["config"] for p in studied]
    assert {c["trainer"]["max_steps"] for c in configs} == {3}
    assert all(c["backbone"]["frozen"] for c in configs)
    assert {c["dataset"]["fold"] for c in configs} == {0, 1}

    # a stopped study started again with --resume reuses every finished run: same numbers, no retraining
    stamps = {p: p.stat().st_mtime_ns for p in logs}
    again = script.main(
        ["--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--resume"]
    )
    assert [r["test"] for r in again] == [r["test"] for r in results]
    assert {p: p.stat().st_mtime_ns for p in logs} == stamps
