"""dml-eval ckpt=PATH [key=value ...]: re-embed a run's eval split and print its metrics table;
ckpt=[A,B,...] scores several models' test embeddings concatenated."""

from __future__ import annotations

import sys

USAGE = """usage: dml-eval ckpt=PATH [out=results_eval.json] [key=value ...]
       dml-eval ckpt=[A.ckpt,B.ckpt,...] [out=...] [key=value ...]

Loads a dml-train checkpoint (its run config travels inside it), re-embeds the eval split(s)
and prints the same metrics table as dml-train. Extra key=value pairs override the stored
config, e.g. paths.data_dir=/data or eval.batch_size=512.
With a list of checkpoints (e.g. the 4 class-disjoint fold models of one experiment) each model
embeds the test split, the L2-normalised embeddings are concatenated and scored once."""


def _checkpoints(value: str) -> list[str]:
    """`[a.ckpt,b.ckpt]` -> ["a.ckpt", "b.ckpt"]; a single path -> [path]."""
    if value.startswith("[") and value.endswith("]"):
        return [p.strip() for p in value[1:-1].split(",") if p.strip()]
    return [value]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dml-eval`` console script; torch is imported only once the arguments are
    checked, so --help and a malformed call answer at once."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0 if args else 2
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    bad = [a for a in args if "=" not in a]
    if bad or "ckpt" not in opts:
        print(
            f"dml-eval: error: expected ckpt=PATH and key=value pairs, got {bad or args}\n\n{USAGE}",
            file=sys.stderr,
        )
        return 2
    ckpt, out = opts.pop("ckpt"), opts.pop("out", None)
    paths = _checkpoints(ckpt)
    overrides = [f"{k}={v}" for k, v in opts.items()]

    from dml.io import atomic_write_json
    from dml.training.evaluate_checkpoint import evaluate_checkpoint, evaluate_concatenated
    from dml.training.evaluation import format_table
    from dml.training.run import as_user_error

    try:
        if len(paths) == 1:
            metrics, cfg = evaluate_checkpoint(paths[0], overrides)
        else:
            metrics, cfg = evaluate_concatenated(paths, overrides)
    except Exception as err:  # a bad path, override, backbone or missing weights: one line, exit 2
        user = as_user_error(err)
        if user is None:
            raise
        print(f"dml-eval: error: {user}", file=sys.stderr)
        return 2
    what = paths[0] if len(paths) == 1 else f"{len(paths)} checkpoints, embeddings concatenated,"
    print(f"Metrics of {what} on {cfg.dataset.name}:")
    first = str(cfg.get("monitor", "map@r"))
    print(
        format_table(
            {"checkpoint": metrics}, first=first if first in metrics else first.removeprefix("val/")
        )
    )
    if out:
        atomic_write_json(
            out,
            {
                "checkpoint": paths[0] if len(paths) == 1 else paths,
                "dataset": str(cfg.dataset.name),
                "metrics": metrics,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
