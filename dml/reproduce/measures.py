"""The numbers a claim is decided on, read from finished runs: final metrics, MAP@R curves, W1's widths.

`claim_values` returns `values[measure][method][seed]`, the input of dml.reproduce.verdicts. A run
that is not finished is simply absent (its seed drops out of the paired comparisons).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dml.reproduce.claims import NEGATIVE_STRATEGIES, Claim
from dml.reproduce.grids import RunSpec
from dml.reproduce.runner import DONE, run_state

CURVE_METRIC = "map@r"
NEGATIVES_FILE = "negative_distances.json"
Values = dict[str, dict[str, dict[int, float]]]


@dataclass(frozen=True)
class Curve:
    """Test MAP@R after 0 (the untrained network), 1, 2, ... rounds, and the training seconds at each."""

    rounds: np.ndarray
    seconds: np.ndarray
    values: np.ndarray


def load_results(spec: RunSpec) -> dict[str, Any] | None:
    """The run's results.json, or None when the run is not finished."""
    if run_state(spec.folder) != DONE:
        return None
    return json.loads((spec.folder / "results.json").read_text())


def read_curve(folder: Path, results: Mapping[str, Any], metric: str = CURVE_METRIC) -> Curve:
    """The run's test `metric` after each round from csv/metrics.csv, starting from the untrained network.

    One point per epoch (the last row of an epoch, should a resumed run have evaluated it twice);
    an evaluation after the last epoch (a resumed run that had finished training) is left out.
    The seconds are TrainClock's `time/train_seconds` (dml.training.callbacks.train_clock).
    """
    path = folder / "csv" / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the run was not logged with logger=csv")
    key, epochs = f"eval/{metric}", int(results.get("epochs", 0))
    by_epoch: dict[int, tuple[float, float]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get(key) and row.get("epoch") not in (None, ""):
                epoch = int(float(row["epoch"]))
                if epoch < epochs or epochs == 0:
                    seconds = (
                        float(row["time/train_seconds"])
                        if row.get("time/train_seconds")
                        else math.nan
                    )
                    by_epoch[epoch] = (seconds, float(row[key]))
    untrained = (results.get("baselines") or {}).get("untrained", {}).get(metric)
    if untrained is None:
        raise ValueError(
            f"{folder}/results.json has no untrained baseline (run with eval.before_training=true)"
        )
    order = sorted(by_epoch)
    return Curve(
        rounds=np.array([0.0, *(e + 1.0 for e in order)]),
        seconds=np.array([0.0, *(by_epoch[e][0] for e in order)]),
        values=np.array([float(untrained), *(by_epoch[e][1] for e in order)]),
    )


def _area(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid area under y(x) (numpy's trapz/trapezoid differ between versions)."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def auc_rounds(curve: Curve) -> float:
    """Mean height of the curve over the rounds (trapezoids): higher means it rose earlier."""
    if len(curve.rounds) < 2:
        return math.nan
    return _area(curve.values, curve.rounds) / float(curve.rounds[-1])


def auc_time(curve: Curve, horizon: float) -> float:
    """Mean height of the curve (linear between evaluations) over the first `horizon` training seconds."""
    if not horizon > 0 or np.isnan(curve.seconds).any():
        return math.nan
    grid = np.linspace(0.0, horizon, 201)
    return _area(np.interp(grid, curve.seconds, curve.values), grid) / horizon


def drawdown(curve: Curve) -> float:
    """The sum of the curve's drops between consecutive evaluations: 0 for a curve that never falls."""
    return float(np.clip(-np.diff(curve.values), 0.0, None).sum())


def _final(claim: Claim, records: Mapping[str, Mapping[int, dict]]) -> Values:
    values: Values = {m: {} for m in claim.measures}
    for method, by_seed in records.items():
        for seed, results in by_seed.items():
            for measure in claim.measures:
                if measure in results.get("metrics", {}):
                    values[measure].setdefault(method, {})[seed] = float(
                        results["metrics"][measure]
                    )
    return values


def curves_of(
    records: Mapping[str, Mapping[int, dict]], folders: Mapping[str, Mapping[int, Path]]
) -> dict[str, dict[int, Curve]]:
    """Every finished run's MAP@R curve, by method and seed."""
    return {
        method: {
            seed: read_curve(folders[method][seed], results) for seed, results in by_seed.items()
        }
        for method, by_seed in records.items()
    }


def _curves(claim: Claim, records, folders) -> Values:
    curves = curves_of(records, folders)
    values = _final(claim, records)
    for measure in ("auc_rounds", "auc_time", "drawdown"):
        values[measure] = {}
    seeds = sorted({s for by_seed in curves.values() for s in by_seed})
    for seed in seeds:
        at_seed = {m: c[seed] for m, c in curves.items() if seed in c}
        # the common time horizon: the shortest of the compared runs of this seed
        horizon = min(c.seconds[-1] for c in at_seed.values())
        for method, curve in at_seed.items():
            values["auc_rounds"].setdefault(method, {})[seed] = auc_rounds(curve)
            values["drawdown"].setdefault(method, {})[seed] = drawdown(curve)
            t = auc_time(curve, horizon)
            if not math.isnan(t):
                values["auc_time"].setdefault(method, {})[seed] = t
    return values


def _negatives(claim: Claim, records, folders) -> Values:
    values: Values = {"negative_width": {}}
    method = claim.methods[0].name
    for seed, folder in folders.get(method, {}).items():
        path = folder / NEGATIVES_FILE
        if seed in records.get(method, {}) and path.is_file():
            found = json.loads(path.read_text())["strategies"]
            for strategy in NEGATIVE_STRATEGIES:
                if strategy in found:
                    values["negative_width"].setdefault(strategy, {})[seed] = float(
                        found[strategy]["width"]
                    )
    return values


def claim_values(claim: Claim, specs: Mapping[str, Mapping[int, RunSpec]]) -> Values:
    """values[measure][method][seed] of a claim from its finished runs (`specs[method][seed]`)."""
    records: dict[str, dict[int, dict]] = {}
    folders: dict[str, dict[int, Path]] = {}
    for method, by_seed in specs.items():
        for seed, spec in by_seed.items():
            folders.setdefault(method, {})[seed] = spec.folder
            results = load_results(spec)
            if results is not None:
                records.setdefault(method, {})[seed] = results
    if claim.kind == "curves":
        return _curves(claim, records, folders)
    if claim.kind == "negatives":
        return _negatives(claim, records, folders)
    return _final(claim, records)
