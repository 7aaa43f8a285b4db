"""dml-eval ckpt=PATH [key=value ...]: re-embed a run's eval split and print its metrics table."""

from __future__ import annotations

import sys

USAGE = """usage: dml-eval ckpt=PATH [out=results_eval.json] [key=value ...]

Loads a dml-train checkpoint (its run config travels inside it), re-embeds the eval split(s)
and prints the same metrics table as dml-train. Extra key=value pairs override the stored
config, e.g. paths.data_dir=/data or eval.batch_size=512."""


def main(argv: list[str] | None = None) -> int:
    from dml.io import atomic_write_json
    from dml.training.evaluate_checkpoint import evaluate_checkpoint
    from dml.training.evaluation import format_table

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0 if args else 2
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    bad = [a for a in args if "=" not in a]
    if bad or "ckpt" not in opts:
        print(f"dml-eval: error: expected ckpt=PATH and key=value pairs, got {bad or args}\n\n{USAGE}", file=sys.stderr)
        return 2
    ckpt, out = opts.pop("ckpt"), opts.pop("out", None)
    try:
        metrics, cfg = evaluate_checkpoint(ckpt, [f"{k}={v}" for k, v in opts.items()])
    except (FileNotFoundError, ValueError) as err:
        print(f"dml-eval: error: {err}", file=sys.stderr)
        return 2
    print(f"Metrics of {ckpt} on {cfg.dataset.name}:")
    print(format_table({"checkpoint": metrics}, first=str(cfg.get("monitor", "map@r"))))
    if out:
        atomic_write_json(out, {"checkpoint": ckpt, "dataset": str(cfg.dataset.name), "metrics": metrics})
    return 0


if __name__ == "__main__":
    sys.exit(main())
