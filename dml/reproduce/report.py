"""report.md of a reproduction: a verdict summary, the rules, then per claim its tables, pictures and verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dml.reproduce.claims import Claim
from dml.reproduce.grids import Profile, RunSpec
from dml.reproduce.measures import Values
from dml.reproduce.stats import mean_ci
from dml.reproduce.verdicts import CLAIM_RULE, Outcome

CAVEATS = """\
What the verdicts can and cannot say:

- A verdict is about this setting only: the data, backbone, schedule and seeds listed above, far
  smaller than the papers' benchmarks and fine-tuned ImageNet networks. "Holds" means the
  difference the claim predicts shows up here beyond seed noise; "does not hold" means the data
  rule it out here (beyond the stated margin); neither says what happens at the papers' scale.
- "Inconclusive at this scale" means the 95% intervals are too wide to decide: more seeds or
  longer training could settle it; it is not evidence against the claim.
- The intervals are per comparison (Student t over seeds, paired by seed) with no correction for
  the number of comparisons: a claim made of many comparisons has more chances of one false "does
  not hold" or "holds" than a single 95% interval suggests.
- Hyperparameters are each method's defaults in dml, not tuned per method; a method that needs a
  different learning rate or margin at this scale is judged with the defaults.
- Wall-time measures (W3) depend on the machine's load while the runs ran.
- A claim whose grid did not finish (the summary's "runs finished") is decided on the runs that
  did: fewer seeds than planned, and seeds that may differ between its methods (a comparison
  pairs only the seeds both methods finished).
"""


@dataclass
class ClaimResult:
    """A decided claim: its numbers, comparisons, verdict, runs and pictures."""

    claim: Claim
    values: Values
    outcomes: list[Outcome]
    verdict: str
    specs: Mapping[str, Mapping[int, RunSpec]]
    missing: list[RunSpec] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    @property
    def planned(self) -> int:
        """The runs of the claim's grid (methods x seeds)."""
        return sum(len(by_seed) for by_seed in self.specs.values())

    @property
    def finished(self) -> int:
        """The grid's runs that finished (the numbers come from these only)."""
        return self.planned - len(self.missing)


def _cell(values: Mapping[int, float] | None) -> str:
    return mean_ci(values.values()).format() if values else "no runs"


def means_table(result: ClaimResult) -> str:
    """Rows: the claim's methods (or W1's strategies); columns: each measure's mean [95% CI] and n."""
    claim, values = result.claim, result.values
    rows = list(dict.fromkeys(m for measure in claim.measures for m in values.get(measure, {})))
    rows = rows or [m.name for m in claim.methods]
    header = "| method | " + " | ".join(f"{m} mean [95% CI]" for m in claim.measures) + " | seeds |"
    rule = "|---|" + "---:|" * len(claim.measures) + "---:|"
    lines = [header, rule]
    for method in rows:
        cells = [_cell(values.get(measure, {}).get(method)) for measure in claim.measures]
        n = max(
            (len(values.get(measure, {}).get(method, {})) for measure in claim.measures), default=0
        )
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines)


def differences_table(outcomes: Sequence[Outcome]) -> str:
    """One row per comparison: the paired difference's mean [95% CI], n, verdict and rule."""
    lines = [
        "| comparison | d | mean d [95% CI] | pairs | verdict | rule |",
        "|---|---|---:|---:|---|---|",
    ]
    for o in outcomes:
        c = o.comparison
        lines.append(
            f"| {c.label} | {c.difference} ({c.measure}) | {o.interval.format()} | {o.interval.n} | "
            f"**{o.verdict}** | {c.rule()} |"
        )
    return "\n".join(lines)


def claim_section(result: ClaimResult, out_dir: Path) -> str:
    """The markdown section of one claim."""
    claim = result.claim
    methods = "\n".join(f"- `{m.name}`: `{' '.join(m.overrides)}`" for m in claim.methods)
    parts = [
        f"## {claim.id}: {claim.title}",
        f"**Verdict: {result.verdict}** (rule: {CLAIM_RULE}; each comparison's rule is in its row below)",
        claim.statement,
        f"Methods (each run with the {claim.paper} setting and seed=0..n-1):\n\n{methods}",
        "### Mean and 95% confidence interval over seeds\n\n" + means_table(result),
        "### Paired differences (same seed)\n\n" + differences_table(result.outcomes),
    ]
    if result.missing:
        listed = ", ".join(f"`{s.folder.relative_to(out_dir)}`" for s in result.missing[:10])
        more = f" and {len(result.missing) - 10} more" if len(result.missing) > 10 else ""
        parts.append(f"Runs not finished (left out of the numbers): {listed}{more}.")
    for fig in result.figures:
        parts.append(f"![{claim.id} {fig.stem}]({fig.relative_to(out_dir).as_posix()})")
    return "\n\n".join(parts)


def render(
    results: Sequence[ClaimResult],
    profile: Profile,
    out_dir: Path,
    command: str,
    runs_total: int,
    runs_failed: Sequence[RunSpec],
    seconds: float,
) -> str:
    """The whole report.md."""
    papers = list(dict.fromkeys(r.claim.paper for r in results))
    # runs finished of the claim's grid: a verdict on an unfinished grid is on fewer seeds than planned
    summary = ["| claim | paper | what | runs finished | verdict |", "|---|---|---|---:|---|"]
    summary += [
        f"| {r.claim.id} | {r.claim.paper} | {r.claim.title} | {r.finished} of {r.planned} | **{r.verdict}** |"
        for r in results
    ]
    settings = "\n".join(f"- {p}: `{' '.join(profile.setting(p))}`" for p in papers)
    from dml.reproduce import verdicts

    rules = verdicts.__doc__.split("\n\n", 1)[1].strip()
    failed = (
        "\n\nRuns that failed (see their logs under `logs/`): "
        + ", ".join(f"`{s.folder.relative_to(out_dir)}`" for s in runs_failed)
        if runs_failed
        else ""
    )
    head = "\n\n".join(
        [
            "# Reproducing the seed papers' claims",
            f"Command: `{command}`. Profile `{profile.name}`: seeds {list(profile.seeds)}; {runs_total} runs "
            f"(each a normal dml-train run with its own folder under `runs/`), this invocation took "
            f"{seconds / 60:.1f} min.{failed}",
            "## Verdicts\n\n" + "\n".join(summary),
            "## Setting\n\nEvery run of a paper's claims shares these overrides (then the method's own and "
            f"the seed):\n\n{settings}",
            "## How a verdict is decided\n\n" + rules,
            CAVEATS,
        ]
    )
    return head + "\n\n" + "\n\n".join(claim_section(r, out_dir) for r in results) + "\n"
