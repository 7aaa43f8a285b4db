"""dml-reproduce PAPER: run the grid of each of a paper's claims (or all seven), decide them, write report.md."""

from __future__ import annotations

import argparse
import shlex
import sys

DESCRIPTION = """Test the claims of the seed papers with grids of normal dml-train runs (one folder and
results.json per run, under OUT/runs/), then write OUT/report.md with, per claim, the mean and 95%
confidence interval over seeds, the paired differences between the compared methods, the pictures,
and a verdict (holds / does not hold / inconclusive at this scale) decided by a rule fixed in code.
Run it again after an interruption: finished runs are kept, a killed run resumes from its checkpoint."""

EPILOG = """claims: wu2017 = W1 W2 W3, levi2020 = L1 L2, wang2019 = M1 M2, all = the seven.
examples:
  dml-reproduce all                       # the full grids on emoji (13 min measured on 2 cores)
  dml-reproduce wu2017 --quick            # every claim's machinery in a few minutes
  dml-reproduce all --set dataset=fonts   # other data for every run (the trunk stays frozen)
  dml-reproduce all --set dataset=digits --set backbone=small_cnn --set backbone.frozen=false
  dml-reproduce all --report-only         # decide again from the finished runs, train nothing"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dml-reproduce",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paper", choices=("wu2017", "levi2020", "wang2019", "all"), help="whose claims to test"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="two seeds, a few steps: checks the machinery, decides little",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for runs/, figures/ and report.md (default: reproduce or reproduce_quick)",
    )
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument(
        "--seeds", type=int, default=None, help="use seeds 0..N-1 instead of the profile's"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="dml-train override for every run, replacing the setting's value of that key (repeatable)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing; decide and report on the finished runs",
    )
    p.add_argument(
        "--list", action="store_true", help="print each run's state and command, then stop"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    from dataclasses import replace
    from pathlib import Path

    from dml.reproduce.grids import FULL, QUICK

    args = _parser().parse_args(argv)
    if args.jobs < 1 or args.threads < 1 or (args.seeds is not None and args.seeds < 1):
        print("dml-reproduce: error: --jobs, --threads and --seeds must be >= 1", file=sys.stderr)
        return 2
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        print(
            f"dml-reproduce: error: --set {bad[0]!r} is not KEY=VALUE (e.g. --set dataset=emoji)",
            file=sys.stderr,
        )
        return 2
    profile = QUICK if args.quick else FULL
    profile = replace(profile, extra=tuple(args.overrides))
    if args.seeds is not None:
        profile = replace(profile, seeds=tuple(range(args.seeds)))
    out = Path(args.out or ("reproduce_quick" if args.quick else "reproduce"))
    command = "dml-reproduce " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )

    from dml.reproduce.claims import claims_of
    from dml.reproduce.pipeline import all_specs, plan, reproduce
    from dml.reproduce.runner import groups, run_state, train_command

    if args.list:  # each method's multirun, and the state of each of its runs
        for group in groups(all_specs(plan(claims_of(args.paper), profile, out.resolve()))):
            states = ", ".join(f"seed {s.seed}: {run_state(s.folder)}" for s in group)
            print(f"{shlex.join(train_command(group))}\n    {states}")
        return 0
    report, results, attempts = reproduce(
        args.paper,
        out,
        profile,
        jobs=args.jobs,
        threads=args.threads,
        command=command,
        run=not args.report_only,
    )
    for r in results:
        print(f"{r.claim.id}: {r.verdict}")
    print(f"report: {report}")
    failed = [a for a in attempts if a.failed]
    if failed:
        print(
            f"dml-reproduce: {len(failed)} run(s) failed; their logs are under {out / 'logs'}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
