"""dml-reproduce all --quick end to end: every claim gets a section, a verdict, its tables and pictures;
a second invocation trains nothing and decides the same."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dml.reproduce.claims import CLAIMS
from dml.reproduce.verdicts import VERDICTS


def _reproduce(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    return subprocess.run(
        [sys.executable, "-m", "dml.cli.reproduce", "all", "--quick", "--out", str(out), *extra],
        capture_output=True, text=True, env=env, timeout=3600, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_quick_reproduction_writes_a_report_with_a_verdict_per_claim(tmp_path):
    out = tmp_path / "repro"
    first = _reproduce(out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = (out / "report.md").read_text()

    sections = re.split(r"^## ", report, flags=re.M)
    for claim in CLAIMS:
        (section,) = [s for s in sections if s.startswith(f"{claim.id}: ")]
        verdict = re.search(r"\*\*Verdict: (.+?)\*\* \(rule: ", section)
        assert verdict and verdict.group(1) in VERDICTS, claim.id
        assert "### Mean and 95% confidence interval over seeds" in section
        assert "| method |" in section and "### Paired differences (same seed)" in section
        rows = [line for line in section.splitlines() if line.startswith("| ")]
        assert all(c.label in section and c.rule() in section for c in claim.comparisons)
        assert len(rows) >= 2 + 2 + len(
            claim.comparisons
        )  # two headers, a method at least, a row per comparison
        pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section)
        assert len(pictures) >= 2 and all(
            (out / p).is_file() and (out / p).stat().st_size > 1000 for p in pictures
        )
        assert "no runs" not in section  # every method of every claim finished
        assert f"| {claim.id} |" in report  # in the summary table
    assert (out / "figures" / "W3_curves.png").is_file() and (
        out / "figures" / "W1_negatives.png"
    ).is_file()
    runs = list((out / "runs").glob("*/seed_*/results.json"))
    assert len(runs) == 22 * 2  # 22 methods x 2 seeds, each a normal dml-train run folder
    assert all((r.parent / ".hydra" / "config.yaml").is_file() for r in runs)

    second = _reproduce(out)
    assert second.returncode == 0
    assert "finished in" not in second.stdout and "already finished" in second.stdout
    verdicts = lambda text: re.findall(r"^(\w\d): (.+)$", text, flags=re.M)  # noqa: E731
    assert verdicts(second.stdout) == verdicts(first.stdout) and len(verdicts(first.stdout)) == 7
