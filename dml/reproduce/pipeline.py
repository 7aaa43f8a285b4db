"""dml-reproduce as a Python function: plan each claim's runs, run what is not finished, decide, report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dml.io import atomic_write_bytes
from dml.reproduce import figures
from dml.reproduce.claims import NEGATIVE_STRATEGIES, Claim, claims_of
from dml.reproduce.grids import Profile, RunSpec
from dml.reproduce.measures import claim_values, curves_of, load_results
from dml.reproduce.negatives import analyse_run
from dml.reproduce.report import ClaimResult, render
from dml.reproduce.runner import DONE, Attempt, execute, run_state, unique
from dml.reproduce.verdicts import combine, decide_all

log = logging.getLogger("dml")
Plan = dict[str, dict[str, dict[int, RunSpec]]]  # claim id -> method -> seed -> run


def plan(claims: Sequence[Claim], profile: Profile, out: Path) -> Plan:
    """The runs of each claim: every method with every seed of the profile, in its paper's setting."""
    return {
        claim.id: {
            m.name: {
                seed: RunSpec(profile.setting(claim.paper), m.overrides, seed, out)
                for seed in profile.seeds
            }
            for m in claim.methods
        }
        for claim in claims
    }


def all_specs(runs: Plan) -> list[RunSpec]:
    return unique(
        spec
        for by_method in runs.values()
        for by_seed in by_method.values()
        for spec in by_seed.values()
    )


def decide(
    claim: Claim, specs: dict[str, dict[int, RunSpec]], out: Path, profile: Profile
) -> ClaimResult:
    """A claim's numbers, comparisons, verdict and pictures from its finished runs."""
    if claim.kind == "negatives":  # W1 looks at the trained models first
        for seed, spec in specs[claim.methods[0].name].items():
            if run_state(spec.folder) == DONE:
                analyse_run(spec.folder, profile.negative_batches, seed)
    values = claim_values(claim, specs)
    outcomes = decide_all(claim.comparisons, values)
    missing = [
        s for by_seed in specs.values() for s in by_seed.values() if run_state(s.folder) != DONE
    ]
    result = ClaimResult(
        claim, values, outcomes, combine(o.verdict for o in outcomes), specs, missing
    )
    fig_dir, title = out / "figures", f"{claim.id} ({claim.paper})"
    if claim.kind == "negatives":
        analyses = [
            analyse_run(s.folder, profile.negative_batches, seed)
            for seed, s in specs[claim.methods[0].name].items()
            if run_state(s.folder) == DONE
        ]
        if analyses:
            result.figures.append(
                figures.negatives_figure(
                    analyses, NEGATIVE_STRATEGIES, fig_dir / f"{claim.id}_negatives.png", title
                )
            )
        result.figures.append(
            figures.means_figure(
                values,
                claim.measures,
                NEGATIVE_STRATEGIES,
                fig_dir / f"{claim.id}_means.png",
                title,
            )
        )
    else:
        methods = [m.name for m in claim.methods]
        result.figures.append(
            figures.means_figure(
                values, claim.measures, methods, fig_dir / f"{claim.id}_means.png", title
            )
        )
        if claim.kind == "curves":
            records = {
                m: {seed: r for seed, s in by_seed.items() if (r := load_results(s)) is not None}
                for m, by_seed in specs.items()
            }
            folders = {
                m: {seed: s.folder for seed, s in by_seed.items()} for m, by_seed in specs.items()
            }
            result.figures.append(
                figures.curves_figure(
                    curves_of(records, folders), fig_dir / f"{claim.id}_curves.png", title
                )
            )
    result.figures.append(
        figures.differences_figure(outcomes, fig_dir / f"{claim.id}_differences.png", title)
    )
    return result


def _print_progress(attempt: Attempt, done: int, total: int) -> None:
    if attempt.returncode is None:
        status = "already finished"
    elif attempt.failed:
        status = f"FAILED (exit {attempt.returncode}; log: {attempt.log})"
    else:
        status = f"{'resumed, ' if attempt.state_before != 'new' else ''}finished in {attempt.seconds:.0f} s"
    print(f"[{done}/{total}] {attempt.spec.key} seed {attempt.spec.seed}: {status}", flush=True)


def reproduce(
    paper: str,
    out: Path,
    profile: Profile,
    jobs: int = 2,
    threads: int = 1,
    command: str = "dml-reproduce",
    run: bool = True,
    progress: Callable[[Attempt, int, int], None] | None = _print_progress,
) -> tuple[Path, list[ClaimResult], list[Attempt]]:
    """Run the claims of `paper` (wu2017 | levi2020 | wang2019 | all) and write `<out>/report.md`.

    run=False only decides and reports on the runs already finished (nothing is trained).
    """
    import torch

    start = time.time()
    claims = claims_of(paper)
    out = Path(out).resolve()
    runs = plan(claims, profile, out)
    specs = all_specs(runs)
    attempts = execute(specs, jobs=jobs, threads=threads, progress=progress) if run else []
    torch.set_num_threads(threads)  # W1's analysis in this process: small matrices
    results = [decide(claim, runs[claim.id], out, profile) for claim in claims]
    failed = [a.spec for a in attempts if a.failed]
    text = render(results, profile, out, command, len(specs), failed, time.time() - start)
    report = out / "report.md"
    atomic_write_bytes(report, text.encode())
    return report, results, attempts
