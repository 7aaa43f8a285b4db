"""The numbers claims are decided on, read from run folders: MAP@R curves, their areas and drops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dml.reproduce.claims import W3, Claim, Method
from dml.reproduce.grids import RunSpec
from dml.reproduce.measures import Curve, auc_rounds, auc_time, claim_values, drawdown, read_curve


def _run(
    folder: Path,
    untrained: float,
    rows: list[tuple[int, float, float]],
    epochs: int | None = None,
    final: float = 0.0,
) -> None:
    """A finished run: results.json and csv/metrics.csv with (epoch, seconds, map@r) eval rows between train rows."""
    (folder / "csv").mkdir(parents=True)
    lines = ["epoch,eval/map@r,step,time/train_seconds,train/loss"]
    for epoch, seconds, value in rows:
        lines.append(f"{epoch},,{epoch * 10 + 4},,0.5")
        lines.append(f"{epoch},{value},{epoch * 10 + 9},{seconds},")
    (folder / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")
    results = {
        "metrics": {"map@r": final or rows[-1][2]},
        "baselines": {"untrained": {"map@r": untrained}},
        "epochs": epochs if epochs is not None else len({r[0] for r in rows}),
    }
    (folder / "results.json").write_text(json.dumps(results))


def test_read_curve_starts_untrained_and_keeps_the_last_row_of_an_epoch(tmp_path):
    # epoch 1 evaluated twice (a resumed run), and an evaluation after the last epoch (left out)
    _run(
        tmp_path,
        0.4,
        [(0, 10.0, 0.5), (1, 20.0, 0.55), (1, 21.0, 0.6), (2, 30.0, 0.7), (3, 31.0, 0.9)],
        epochs=3,
    )
    curve = read_curve(tmp_path, json.loads((tmp_path / "results.json").read_text()))
    assert curve.rounds.tolist() == [0, 1, 2, 3]
    assert curve.values.tolist() == [0.4, 0.5, 0.6, 0.7]
    assert curve.seconds.tolist() == [0, 10, 21, 30]


def test_curve_measures_by_hand():
    c = Curve(
        rounds=np.array([0.0, 1, 2, 3]),
        seconds=np.array([0.0, 10, 20, 30]),
        values=np.array([0.4, 0.6, 0.5, 0.7]),
    )
    # trapezoids: (0.4+0.6)/2 + (0.6+0.5)/2 + (0.5+0.7)/2 = 1.65 over 3 rounds
    assert auc_rounds(c) == pytest.approx(0.55)
    assert auc_time(c, 30.0) == pytest.approx(0.55)
    # over the first 10 s only: the mean of the line from 0.4 to 0.6
    assert auc_time(c, 10.0) == pytest.approx(0.5)
    assert drawdown(c) == pytest.approx(0.1)
    assert drawdown(Curve(c.rounds, c.seconds, np.array([0.4, 0.5, 0.6, 0.7]))) == 0.0


def test_w3_values_use_a_common_time_horizon_per_seed(tmp_path):
    specs = {m.name: {0: RunSpec((), m.overrides, 0, tmp_path)} for m in W3.methods}
    fast, slow, other = (specs[m.name][0].folder for m in W3.methods)
    _run(fast, 0.4, [(0, 10.0, 0.6), (1, 20.0, 0.6)])
    _run(slow, 0.4, [(0, 40.0, 0.6), (1, 80.0, 0.6)])
    _run(other, 0.4, [(0, 10.0, 0.4), (1, 20.0, 0.3)])
    values = claim_values(W3, specs)
    names = [m.name for m in W3.methods]
    # the same curve against rounds; against time the slow run has reached less by 20 s
    assert values["auc_rounds"][names[0]][0] == pytest.approx(values["auc_rounds"][names[1]][0])
    assert values["auc_time"][names[0]][0] > values["auc_time"][names[1]][0]
    assert values["drawdown"][names[2]][0] == pytest.approx(0.1)
    assert values["map@r"][names[0]][0] == pytest.approx(0.6)


def test_unfinished_runs_are_left_out(tmp_path):
    claim = Claim("X", "wu2017", "t", "s", (Method("a", ("loss=margin",)),), ("map@r",), ())
    done, killed = (
        RunSpec((), ("loss=margin",), 0, tmp_path),
        RunSpec((), ("loss=margin",), 1, tmp_path),
    )
    _run(done.folder, 0.4, [(0, 1.0, 0.6)])
    (killed.folder / "checkpoints").mkdir(parents=True)
    values = claim_values(claim, {"a": {0: done, 1: killed}})
    assert values == {"map@r": {"a": {0: 0.6}}}


def test_missing_untrained_baseline_is_named(tmp_path):
    _run(tmp_path, 0.4, [(0, 1.0, 0.6)])
    with pytest.raises(ValueError, match="eval.before_training=true"):
        read_curve(tmp_path, {"epochs": 1, "baselines": {}})
