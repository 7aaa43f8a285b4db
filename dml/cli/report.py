"""dml-report PATH...: paper-style tables (mean ± std over seeds, published rows beside) of finished runs."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """Read the results.json of runs and multiruns (folders are searched recursively) and print
one table per dataset in the papers' layout: a row per method (runs grouped by their config minus the
seed), mean ± std over the seeds in percent, the published numbers of the experiment beside ours, and
the overrides that produced each row (rows are named by the overrides that differ between them).
Several rows are sorted best first by the runs' monitor metric, and the best is marked."""

EPILOG = """examples:
  dml-report multirun/train/2026-01-31_10-00-00
  dml-report outputs/ --format latex --metrics recall@1,recall@2,recall@4,recall@8
  dml-report multirun/ --format csv -o table.csv --plots plots.html
  dml-report outputs/train/ --baselines    # separate runs, with their untrained / raw-pixel rows"""


def _parser() -> argparse.ArgumentParser:
    from dml.report import FORMATS

    p = argparse.ArgumentParser(
        prog="dml-report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="run folders, multirun folders or results.json files",
    )
    p.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        default="markdown",
        help="table format (default: markdown)",
    )
    p.add_argument(
        "--metrics", "-m", default=None, help="comma-separated metric columns, e.g. recall@1,map@r"
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="KEY",
        help="config key (dotted, wildcards allowed) that does not split rows, e.g. trainer.max_epochs",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="add each row's baseline columns (untrained network, raw pixels) as rows under it",
    )
    p.add_argument(
        "--output", "-o", default=None, help="write the table to this file too (atomically)"
    )
    p.add_argument(
        "--plots",
        nargs="?",
        const="plots.html",
        default=None,
        metavar="PAGE",
        help="also write a page with the plots of every run (default PAGE: plots.html)",
    )
    p.add_argument(
        "--plots-format",
        choices=("html", "md"),
        default=None,
        help="page format (default: from the PAGE file name)",
    )
    return p


def _write_plots(run_dirs: list, page: str, fmt: str | None) -> int:
    """The issue-8 plots page, when this installation has it."""
    try:
        from dml.viz.page import write_plots_page
    except ImportError as err:
        print(
            f"dml-report: --plots needs dml.viz.page.write_plots_page, which this installation lacks ({err}); "
            "the table above was written without plots",
            file=sys.stderr,
        )
        return 1
    written = write_plots_page(run_dirs, page, fmt)
    print(f"plots: {written}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from dml.io import atomic_write_bytes
    from dml.report import ReportError, load_runs, render, summarize

    args = _parser().parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    try:
        runs = load_runs(args.paths)
        if not runs:
            raise ReportError(
                f"no finished run (results.json with metrics) under {', '.join(args.paths)}"
            )
        text = render(
            summarize(runs, ignore=args.ignore, metrics=metrics, baselines=args.baselines),
            args.format,
        )
    except ReportError as err:
        print(f"dml-report: error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    if args.output:
        atomic_write_bytes(args.output, text.encode())
    if args.plots:
        run_dirs = list(dict.fromkeys(run.run_dir for run in runs))
        return _write_plots(run_dirs, args.plots, args.plots_format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
