"""report.md's summary says how much of each claim's grid finished, so a verdict on fewer seeds than
planned is visible next to it."""

from __future__ import annotations

from pathlib import Path

from dml.reproduce.claims import M2
from dml.reproduce.grids import FULL
from dml.reproduce.pipeline import plan
from dml.reproduce.report import ClaimResult, render
from dml.reproduce.verdicts import INCONCLUSIVE


def _result(missing_seeds: int) -> ClaimResult:
    out = Path("/out")
    specs = plan([M2], FULL, out)["M2"]
    missing = [by_seed[s] for by_seed in specs.values() for s in list(by_seed)[:missing_seeds]]
    return ClaimResult(M2, {}, [], INCONCLUSIVE, specs, missing)


def test_summary_counts_the_finished_runs_of_each_claim():
    planned = len(M2.methods) * len(FULL.seeds)  # 4 sizes x 8 seeds
    for missing_seeds, finished in ((0, planned), (3, planned - 3 * len(M2.methods))):
        result = _result(missing_seeds)
        assert (result.planned, result.finished) == (planned, finished)
        report = render([result], FULL, Path("/out"), "dml-reproduce wang2019", planned, [], 60.0)
        row = next(line for line in report.splitlines() if line.startswith("| M2 |"))
        assert f"| {finished} of {planned} |" in row and INCONCLUSIVE in row
    assert "Runs not finished (left out of the numbers)" in report
