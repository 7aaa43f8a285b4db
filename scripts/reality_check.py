"""A small Reality Check (Musgrave et al. 2020's protocol, scaled to a CPU) on dml's embedded real data.

Every loss (the paper's fourteen, plus ProxyAnchor) trains with the same pretrained trunk, batch
composition, optimizer and step budget; only the loss and its hyperparameters change:

- data: `dataset=emoji` (or fonts), its class-disjoint train/test split; the train classes are cut
  into `--folds` class-disjoint folds (dataset.folds/fold): fold k trains on the others and
  validates on partition k.
- model: EfficientNet-Lite0 with ImageNet weights, frozen (`backbone.frozen=true`): its pooled
  features are computed once and cached, and each run trains only the linear embedding head
  (embedding_dim 64) with Adam lr 1e-3 for `--steps` steps of batches of 16 classes x 4 images. Full
  fine-tuning of every trial does not fit a 2-core CPU budget; this is the protocol that does.
- search: per loss an Optuna TPE search (seeded) with the same number of trials for every loss over
  that loss's own hyperparameters (SPACES below: margins, scales, temperatures, and the learning rate
  of its own parameters where it has some); a trial's score is the mean validation MAP@R over the
  folds. The test classes never select anything.
- result: the best trial's fold models, each scored on the test classes: MAP@R, R-Precision and
  Precision@1 as mean and 95% confidence interval over the folds (t distribution, folds - 1 degrees
  of freedom), as in the paper's "separated" column.

Writes to --out: table.md (the table), reality_check.png (the picture), results.json (every trial
and fold), and runs/ (each run's results.json). One command:

    .venv/bin/python scripts/reality_check.py                       # the full study, emoji
    .venv/bin/python scripts/reality_check.py --dataset fonts --trials 6 --steps 300
    .venv/bin/python scripts/reality_check.py --quick                # 2 losses, tiny: seconds-minutes
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LOSSES = (
    "contrastive",
    "triplet",
    "ntxent",
    "proxy_nca",
    "margin",
    "margin_per_class",
    "normalized_softmax",
    "cosface",
    "arcface",
    "fastap",
    "snr_contrastive",
    "multi_similarity",
    "multi_similarity_miner",
    "soft_triple",
    "proxy_anchor",
)
METRICS = (("map@r", "MAP@R"), ("r_precision", "R-Precision"), ("recall@1", "P@1"))


def _lr(trial: Any) -> dict[str, Any]:
    """The learning rate of the loss's own parameters (beta, proxies, class weights)."""
    return {"optim.loss_lr": trial.suggest_float("optim.loss_lr", 1e-4, 1e-1, log=True)}


# loss -> trial -> overrides: the hyperparameters searched for each loss
SPACES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "contrastive": lambda t: {
        "loss.pos_margin": t.suggest_float("loss.pos_margin", 0.0, 0.5),
        "loss.neg_margin": t.suggest_float("loss.neg_margin", 0.5, 1.5),
    },
    "triplet": lambda t: {"loss.margin": t.suggest_float("loss.margin", 0.01, 0.5)},
    "ntxent": lambda t: {
        "loss.temperature": t.suggest_float("loss.temperature", 0.005, 0.5, log=True)
    },
    "proxy_nca": lambda t: {
        "loss.softmax_scale": t.suggest_float("loss.softmax_scale", 1.0, 32.0, log=True),
        **_lr(t),
    },
    "margin": lambda t: {
        "loss.margin": t.suggest_float("loss.margin", 0.01, 0.3),
        "loss.beta": t.suggest_float("loss.beta", 0.5, 1.4),
        **_lr(t),
    },
    "margin_per_class": lambda t: {
        "loss.margin": t.suggest_float("loss.margin", 0.01, 0.3),
        "loss.beta": t.suggest_float("loss.beta", 0.5, 1.4),
        **_lr(t),
    },
    "normalized_softmax": lambda t: {
        "loss.temperature": t.suggest_float("loss.temperature", 0.01, 0.3, log=True),
        **_lr(t),
    },
    "cosface": lambda t: {
        "loss.margin": t.suggest_float("loss.margin", 0.1, 0.6),
        "loss.scale": t.suggest_float("loss.scale", 8.0, 128.0, log=True),
        **_lr(t),
    },
    "arcface": lambda t: {
        "loss.margin": t.suggest_float("loss.margin", 5.0, 40.0),  # degrees
        "loss.scale": t.suggest_float("loss.scale", 8.0, 128.0, log=True),
        **_lr(t),
    },
    "fastap": lambda t: {"loss.num_bins": t.suggest_int("loss.num_bins", 5, 50)},
    "snr_contrastive": lambda t: {
        "loss.pos_margin": t.suggest_float("loss.pos_margin", 0.0, 0.5),
        "loss.neg_margin": t.suggest_float("loss.neg_margin", 0.5, 1.5),
    },
    "multi_similarity": lambda t: {
        "loss.alpha": t.suggest_float("loss.alpha", 0.1, 20.0, log=True),
        "loss.beta": t.suggest_float("loss.beta", 10.0, 80.0),
        "loss.base": t.suggest_float("loss.base", 0.3, 0.9),
    },
    "multi_similarity_miner": lambda t: {
        "loss.alpha": t.suggest_float("loss.alpha", 0.1, 20.0, log=True),
        "loss.beta": t.suggest_float("loss.beta", 10.0, 80.0),
        "loss.base": t.suggest_float("loss.base", 0.3, 0.9),
        "sampler.epsilon": t.suggest_float("sampler.epsilon", 0.05, 0.8),
    },
    "soft_triple": lambda t: {
        "loss.la": t.suggest_float("loss.la", 5.0, 100.0, log=True),
        "loss.gamma": t.suggest_float("loss.gamma", 0.01, 1.0, log=True),
        "loss.margin": t.suggest_float("loss.margin", 0.01, 0.5),
        **_lr(t),
    },
    "proxy_anchor": lambda t: {
        "loss.margin": t.suggest_float("loss.margin", 0.0, 0.5),
        "loss.alpha": t.suggest_float("loss.alpha", 4.0, 64.0, log=True),
        **_lr(t),
    },
}


def protocol(args: argparse.Namespace) -> list[str]:
    """The overrides every run shares: data, frozen trunk, head, batches, optimizer, budget."""
    overrides = [
        f"dataset={args.dataset}",
        "backbone=efficientnet_lite0",
        "backbone.frozen=true",
        f"paths.cache_dir={args.cache_dir}",
        "embedding_dim=64",
        f"dataset.classes_per_batch={args.classes_per_batch}",
        "dataset.m_per_class=4",
        "dataset.metrics.nmi=false",
        "dataset.metrics.ks=[1]",
        f"dataset.folds={args.folds}",
        "optimizer=adam",
        "optimizer.lr=0.001",
        "scheduler=none",
        f"trainer.max_steps={args.steps}",
        "trainer.max_epochs=-1",
        # one evaluation, of the final weights (dml.training.run.fit scores them)
        "trainer.check_val_every_n_epoch=100000",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "logger=none",
        "callbacks=none",
        "eval.before_training=false",
        "eval.raw_baseline=false",
        "monitor=val/map@r",
        f"seed={args.seed}",
    ]
    if args.num_classes is not None:
        overrides.append(f"dataset.num_classes={args.num_classes}")
    return overrides + list(args.set)


def train_run(out: Path, overrides: Sequence[str]) -> dict[str, float]:
    """One dml-train run, in-process; its console output goes to out/console.log. Returns its
    metrics (test: map@r ...; validation fold: val/map@r ...)."""
    return _train(out, overrides)["metrics"]


def frozen_trunk_baseline(args: argparse.Namespace, runs: Path) -> dict[str, float]:
    """The test metrics of the frozen trunk's pooled features themselves (L2-normalised, no head):
    the column dml-train scores before training with backbone.frozen=true."""
    result = _train(
        runs / "frozen_trunk",
        [*protocol(args), "loss=triplet", "dataset.fold=0", "eval.before_training=true"],
    )
    return dict(result["baselines"]["backbone"])


def _train(out: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """train(cfg) in `out`; a folder that already holds the results of the same resolved config (a
    study that was stopped and started again) is reused rather than trained again: the runs are
    deterministic, so its numbers are those a new run would give."""
    from omegaconf import OmegaConf

    from dml.config import compose_train
    from dml.training.run import train

    cfg = compose_train(out, overrides)
    done = out / "results.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("config") == OmegaConf.to_container(cfg, resolve=True):
            return saved
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    with (
        contextlib.redirect_stdout(buffer),
        contextlib.redirect_stderr(buffer),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        result = train(cfg)
    (out / "console.log").write_text(buffer.getvalue())
    return result


def confidence_interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% confidence interval: t distribution, n - 1 degrees of freedom);
    half-width nan for a single value."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, float(half)


def study(loss: str, args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    """The Optuna search of one loss on the validation folds; returns its trials and the best
    trial's per-fold test metrics."""
    import optuna

    base = [*protocol(args), f"loss={loss}"]
    if not _has_own_sampler(loss):
        base.append("~sampler")  # no mining for any loss but MS + miner (the paper's setting)

    def objective(trial: optuna.Trial) -> float:
        params = SPACES[loss](trial)
        folds = []
        for fold in range(args.folds):
            metrics = train_run(
                runs / loss / f"trial{trial.number}" / f"fold{fold}",
                [*base, f"dataset.fold={fold}", *(f"{k}={v}" for k, v in params.items())],
            )
            folds.append(metrics)
        trial.set_user_attr("folds", folds)
        return statistics.fmean(f["val/map@r"] for f in folds)

    sampler = optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=min(args.trials, 5))
    optuna_study = optuna.create_study(direction="maximize", sampler=sampler, study_name=loss)
    optuna_study.optimize(objective, n_trials=args.trials)
    best = optuna_study.best_trial
    folds = best.user_attrs["folds"]
    test = {
        key: confidence_interval([f[key] for f in folds]) for key, _ in METRICS if key in folds[0]
    }
    return {
        "loss": loss,
        "best_params": best.params,
        "best_val_map@r": best.value,
        "test": {k: {"mean": m, "ci95": h} for k, (m, h) in test.items()},
        "test_folds": folds,
        "trials": [
            {"number": t.number, "params": t.params, "val_map@r": t.value}
            for t in optuna_study.trials
        ],
    }


def _has_own_sampler(loss: str) -> bool:
    """The loss files that pick the sampler themselves (none, or multi-similarity mining)."""
    from dml.config import config_dir

    return "override /sampler" in (config_dir() / "loss" / f"{loss}.yaml").read_text()


def table(
    results: Sequence[dict[str, Any]], header: str, baseline: dict[str, float] | None = None
) -> str:
    """The markdown table: one row per loss, mean ± 95% CI of each metric, in percent; the frozen
    trunk's own features as the last row."""
    lines = [
        header,
        "",
        "| loss | " + " | ".join(name for _, name in METRICS) + " | val MAP@R (best trial) |",
        "|---|" + "---|" * (len(METRICS) + 1),
    ]
    for r in results:
        cells = []
        for key, _ in METRICS:
            m = r["test"].get(key)
            if m is None:
                cells.append("-")
            elif math.isnan(m["ci95"]):
                cells.append(f"{100 * m['mean']:.2f}")
            else:
                cells.append(f"{100 * m['mean']:.2f} ± {100 * m['ci95']:.2f}")
        lines.append(
            f"| {r['loss']} | " + " | ".join(cells) + f" | {100 * r['best_val_map@r']:.2f} |"
        )
    if baseline:
        cells = [f"{100 * baseline[key]:.2f}" if key in baseline else "-" for key, _ in METRICS]
        lines.append(
            "| (frozen trunk features, no head, not trained) | " + " | ".join(cells) + " | - |"
        )
    return "\n".join(lines) + "\n"


def picture(results: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """One horizontal bar per loss and metric: mean with its 95% confidence interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(results, key=lambda r: r["test"]["map@r"]["mean"])
    fig, axes = plt.subplots(
        1, len(METRICS), figsize=(4 * len(METRICS), 0.35 * len(order) + 1.5), sharey=True
    )
    for ax, (key, name) in zip(axes, METRICS, strict=True):
        means = [100 * r["test"][key]["mean"] for r in order]
        errs = [
            0.0 if math.isnan(r["test"][key]["ci95"]) else 100 * r["test"][key]["ci95"]
            for r in order
        ]
        ax.barh([r["loss"] for r in order], means, xerr=errs, color="#4c72b0", capsize=3)
        ax.set_xlabel(f"{name} (%)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="emoji", choices=["emoji", "fonts"])
    p.add_argument("--losses", default=",".join(LOSSES), help="comma-separated loss names")
    p.add_argument(
        "--trials", type=int, default=4, help="Optuna trials per loss (the same for all)"
    )
    p.add_argument("--folds", type=int, default=4, help="class-disjoint folds of the train classes")
    p.add_argument("--steps", type=int, default=150, help="training steps of every run")
    p.add_argument("--classes-per-batch", type=int, default=16)
    p.add_argument(
        "--num-classes", type=int, default=None, help="a subset of the dataset's classes"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for a head)")
    p.add_argument("--out", default="outputs/reality_check")
    p.add_argument("--cache-dir", default=None, help="feature cache (default: paths.cache_dir)")
    p.add_argument("--set", action="append", default=[], help="one more dml-train override")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep --out/runs and reuse every run already finished with the same config",
    )
    p.add_argument(
        "--isolate",
        action="store_true",
        help="study each loss in its own process (bounded memory for the full study)",
    )
    p.add_argument("--study-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: triplet and proxy_anchor, 1 trial, 2 folds, 3 steps, 16 classes",
    )
    args = p.parse_args(argv)
    if args.study_only:
        args.isolate = False
    if args.quick:
        args.losses, args.trials, args.folds, args.steps = "triplet,proxy_anchor", 1, 2, 3
        args.num_classes, args.classes_per_batch = 16, 4
    unknown = [n for n in args.losses.split(",") if n not in SPACES]
    if unknown:
        p.error(f"unknown loss {unknown[0]!r}; choose from {', '.join(LOSSES)}")
    if args.cache_dir is None:
        from dml.config import compose_train

        args.cache_dir = str(compose_train(Path(".")).paths.cache_dir)
    return args


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the study; returns one result per loss (also written to --out)."""
    args = parse_args(argv)
    import optuna
    import torch

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("dml", "pytorch_lightning", "lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    out = Path(args.out)
    runs = out / "runs"
    if runs.exists() and not args.resume:
        shutil.rmtree(runs)
    results, start = [], time.time()
    for loss in args.losses.split(","):
        t0 = time.time()
        studies = out / "studies"
        studies.mkdir(parents=True, exist_ok=True)
        if args.isolate:  # one process per loss: memory is returned after each loss's 16+ runs
            argv_one = [a for a in (argv if argv is not None else sys.argv[1:])]
            subprocess.run(
                [sys.executable, __file__, *argv_one, "--losses", loss, "--resume", "--study-only"],
                check=True,
            )
            results.append(json.loads((studies / f"{loss}.json").read_text()))
        else:
            results.append(study(loss, args, runs))
            (studies / f"{loss}.json").write_text(json.dumps(results[-1], default=float))
        if args.study_only:
            return results
        r = results[-1]
        print(
            f"{loss}: test MAP@R {100 * r['test']['map@r']['mean']:.2f} "
            f"(best val {100 * r['best_val_map@r']:.2f}), {time.time() - t0:.0f} s",
            flush=True,
        )
    baseline = frozen_trunk_baseline(args, runs)
    seconds = time.time() - start
    header = (
        f"Reality Check on `{args.dataset}` (test classes), EfficientNet-Lite0 frozen + 64-d head, "
        f"{args.steps} steps of {args.classes_per_batch}x4, {args.trials} Optuna trials per loss on "
        f"{args.folds} class-disjoint validation folds; mean ± 95% CI over the {args.folds} fold models "
        f"of the best trial, percent. {seconds:.0f} s on {torch.get_num_threads()} thread(s)."
    )
    out.mkdir(parents=True, exist_ok=True)
    text = table(results, header, baseline)
    (out / "table.md").write_text(text)
    picture(results, out / "reality_check.png", f"Reality Check on {args.dataset}")
    payload = {
        "args": vars(args),
        "seconds": round(seconds, 1),
        "frozen_trunk": baseline,
        "results": results,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
    print(text)
    print(f"written: {out / 'table.md'}, {out / 'reality_check.png'}, {out / 'results.json'}")
    return results


if __name__ == "__main__":
    main()
