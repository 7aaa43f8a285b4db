"""`dml-train` as a Python function: compose objects from the config, train, evaluate, report."""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar

from dml.config import ConfigError, validate, validate_class_sizes
from dml.data.datamodule import DMLDataModule
from dml.data.folds import fold_options
from dml.io import atomic_write_json
from dml.losses.memory import CrossBatchMemory
from dml.models import EmbeddingModel
from dml.models.freeze import freeze_batchnorm
from dml.models.input_check import check_input_size
from dml.training.callbacks import LastCheckpoint
from dml.training.checkpointing import (
    AtomicCheckpointIO,
    check_compatible,
    read_checkpoint,
    remove_stale_temp_files,
    resume_checkpoint,
)
from dml.training.evaluation import Evaluator, format_table, lfw_verification
from dml.training.guards import redact_secrets
from dml.training.loggers import build_loggers
from dml.training.module import DMLModule
from dml.training.objective import TrainingObjective

log = logging.getLogger("dml")
# faiss announces at INFO which CPU build it loaded; Hydra logs INFO to the console
logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def build_model(cfg: DictConfig) -> EmbeddingModel:
    """Backbone from `backbone.net`, linear head to `embedding_dim`, L2 normalisation."""
    backbone = hydra.utils.instantiate(cfg.backbone.net)
    if cfg.backbone.get("freeze_bn", False):
        freeze_batchnorm(backbone)  # eval-mode statistics, no gradient to its affine parameters
    return EmbeddingModel(backbone, int(cfg.embedding_dim))


def build_datamodule(cfg: DictConfig) -> DMLDataModule:
    return DMLDataModule(
        cfg.dataset,
        normalize=str(cfg.backbone.get("normalize", "none")),
        eval_batch_size=int(cfg.eval.batch_size),
        seed=int(cfg.seed),
    )


def _instantiate(node: DictConfig) -> Any:
    """hydra.utils.instantiate, with what the class raised about its arguments as a ConfigError."""
    try:
        return hydra.utils.instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, (ValueError, TypeError)):
            raise ConfigError(str(err.__cause__)) from err
        raise


def build_objective(cfg: DictConfig) -> TrainingObjective:
    """Loss, tuple sampler (`sampler`, optional) and cross-batch memory (`xbm.memory_size` > 0).

    The classes check their own arguments; a bad value is a ConfigError naming the key.
    """
    sampler = _instantiate(cfg.sampler) if cfg.get("sampler") else None
    loss = _instantiate(cfg.loss)
    xbm = cfg.get("xbm") or {}
    size = int(xbm.get("memory_size") or 0)
    memory = CrossBatchMemory(size, start=int(xbm.get("memory_start") or 0)) if size > 0 else None
    return TrainingObjective(loss, sampler, memory)


def _channels_last_input(module: torch.nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: image batches [N, C, H, W] enter the model in channels_last format."""
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def build_module(
    cfg: DictConfig,
    model: EmbeddingModel | None = None,
    evaluator: Evaluator | None = None,
    objective: TrainingObjective | None = None,
) -> DMLModule:
    """The LightningModule with objective (sampler, loss, XBM), optimizer and scheduler from the config.

    evaluator: scores its evaluations (default: the config's `dataset.metrics` on split `test`);
    objective: default `build_objective(cfg)`.
    """
    scheduler = hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    if evaluator is None:
        evaluator = Evaluator(cfg.dataset.get("metrics"))
    model = model if model is not None else build_model(cfg)
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_channels_last_input)
    if cfg.get("compile"):
        model.compile()  # in place: parameter names and checkpoints stay those of the plain model
    return DMLModule(
        model=model,
        objective=objective if objective is not None else build_objective(cfg),
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=scheduler,
        loss_lr=float(cfg.optim.loss_lr),
        backbone_lr_mult=float(cfg.optim.backbone_lr_mult),
        evaluator=evaluator,
        config=redact_secrets(OmegaConf.to_container(cfg, resolve=True)),
        nonfinite=str(cfg.get("nonfinite", "skip")),
        nonfinite_patience=int(cfg.get("nonfinite_patience", 20)),
    )


def build_callbacks(cfg: DictConfig | None, progress_bar: bool = True) -> list[pl.Callback]:
    """Instantiate every node of the `callbacks` group that names a `_target_`; progress_bar=False
    drops progress bar callbacks (Lightning refuses one when trainer.enable_progress_bar=false)."""
    callbacks = [
        hydra.utils.instantiate(node)
        for node in (cfg or {}).values()
        if isinstance(node, DictConfig) and "_target_" in node
    ]
    return [c for c in callbacks if progress_bar or not isinstance(c, ProgressBar)]


@contextmanager
def user_errors(out: Path) -> Iterator[None]:
    """Errors a user causes by config or data, while a run is built, become one ConfigError line
    (dml-train exits 2); whatever fails, a run folder holding nothing but Hydra's own files (the
    run never started) is removed."""
    try:
        yield
    except ConfigError:
        _clean_failed_run_dir(out)
        raise
    except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
        _clean_failed_run_dir(out)
        raise ConfigError(str(err)) from err
    except InstantiationException as err:
        # Hydra wraps what a class raised about its arguments (a missing dataset file, a bad value)
        _clean_failed_run_dir(out)
        cause = err.__cause__
        if isinstance(cause, (ValueError, TypeError, OSError, KeyError)):
            raise ConfigError(str(cause)) from err
        raise
    except Exception:
        _clean_failed_run_dir(out)
        raise


def _clean_failed_run_dir(out: Path) -> None:
    """Remove a run folder that holds nothing but Hydra's own files (the run never started)."""
    if not out.is_dir():
        return
    leftovers = [p for p in out.iterdir() if p.name != ".hydra" and not p.name.endswith(".log")]
    if not leftovers:
        shutil.rmtree(out, ignore_errors=True)


@dataclass
class Run:
    """What `train` builds before fitting."""

    cfg: DictConfig
    out: Path
    datamodule: DMLDataModule
    evaluator: Evaluator
    module: DMLModule
    trainer: pl.Trainer
    ckpt_path: str | None  # the checkpoint training continues from
    resumed_step: int | None  # its global step


def build_run(cfg: DictConfig) -> Run:
    """Check the config, then build objective, data, evaluator, module, loggers and trainer.

    The objective (loss, sampler, XBM) is built before the data, so the classes' own checks of
    their arguments fire before anything loads.
    """
    out = Path(str(cfg.paths.output_dir))
    validate(cfg)
    if str(cfg.monitor).startswith("val/") and fold_options(cfg.dataset) is None:
        raise ConfigError(
            f"monitor={cfg.monitor} needs a validation fold, but dataset.folds is null; set dataset.folds=4 "
            "dataset.fold=0 (class-disjoint folds of the train split) or monitor a test metric"
        )
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    objective = build_objective(cfg)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    validate_class_sizes(cfg, datamodule.train_set.labels)
    evaluator = Evaluator.from_config(cfg, datamodule)
    module = build_module(cfg, evaluator=evaluator, objective=objective)
    first_eval = next(iter(datamodule.eval_sets.values()))[0][0]  # the eval transform's output
    check_input_size(module.model, tuple(first_eval.shape), str(cfg.backbone.net.get("_target_")))
    ckpt_path = resume_checkpoint(cfg, out / "checkpoints")
    resumed = read_checkpoint(ckpt_path, mmap=True) if ckpt_path is not None else None
    if resumed is not None:  # fail now, with both sides named, rather than inside Lightning
        check_compatible(resumed, ckpt_path, module.state_dict(), cfg)
    resumed_step = int(resumed.get("global_step", 0)) if resumed is not None else None
    # resume=true continues this run folder's logs; ckpt_path= starts a new run from those weights
    same_run = resumed is not None and bool(cfg.get("resume")) and not cfg.get("ckpt_path")
    loggers = build_loggers(cfg.get("logger"), resume_step=resumed_step if same_run else None)
    callbacks = build_callbacks(
        cfg.get("callbacks"), progress_bar=bool(cfg.trainer.get("enable_progress_bar", True))
    )
    # checkpoints are written atomically and loaded with weights_only=True (dml.training.checkpointing)
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, **plugins
    )
    return Run(cfg, out, datamodule, evaluator, module, trainer, ckpt_path, resumed_step)


def baseline_columns(run: Run) -> dict[str, dict[str, float]]:
    """The columns beside the trained model's (rank 0): raw pixels, the backbone's own pooled
    features before training (a pretrained backbone's: the number to beat) and the untrained
    network (backbone + untrained head)."""
    cfg, columns = run.cfg, {}
    wanted = ("raw_baseline", "backbone_baseline", "before_training")
    if run.trainer.is_global_zero and any(cfg.eval.get(key) for key in wanted):
        loaders = run.datamodule.eval_dataloaders()  # one set of loaders for every baseline column
        if cfg.eval.get("raw_baseline"):
            columns["raw pixels"] = run.evaluator.score_raw_pixels(loaders)
        if cfg.eval.get("backbone_baseline"):
            columns["backbone"] = run.evaluator.score_backbone(run.module.model, loaders)
        if cfg.eval.get("before_training"):
            columns["untrained"] = run.evaluator.score_model(run.module.model, loaders)
    return columns


def fit(run: Run) -> None:
    """Train (or continue from the checkpoint), then make sure the final weights were evaluated."""
    trainer, module = run.trainer, run.module
    remove_stale_temp_files(
        run.out / "checkpoints"
    )  # a save that was killed leaves its temporary file
    with warnings.catch_warnings():
        # DMLDataModule resumes its batch sampler mid-epoch itself, which Lightning cannot see
        warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
        trainer.fit(module, datamodule=run.datamodule, ckpt_path=run.ckpt_path, weights_only=True)
    if module.last_eval is None or module.last_eval.step != trainer.global_step:
        # the final weights were not evaluated yet (a finished run resumed, training stopped by
        # max_steps mid-epoch, check_val_every_n_epoch > 1): score them, they are what last.ckpt holds
        trainer.validate(module, datamodule=run.datamodule, verbose=False)


def select(run: Run) -> str | None:
    """With class-disjoint folds (monitor=val/...), evaluate the checkpoint the val fold picked and
    return its path; None when the run reports its final weights.

    Only a held-out training fold may select the model whose test metrics are reported; a run
    that monitors a test metric reports its last epoch.
    """
    cfg, checkpoint = run.cfg, run.trainer.checkpoint_callback
    if not str(cfg.monitor).startswith("val/") or not isinstance(checkpoint, ModelCheckpoint):
        return None
    if checkpoint.monitor != f"eval/{cfg.monitor}" or not checkpoint.best_model_path:
        return None
    selected = str(checkpoint.best_model_path)
    run.trainer.validate(
        run.module, datamodule=run.datamodule, ckpt_path=selected, verbose=False, weights_only=True
    )
    return selected


def final_checkpoint(run: Run) -> str | None:
    """The checkpoint that holds the weights training ended with, or None when none was saved.

    LastCheckpoint writes last.ckpt at the end of training; a finished run that was resumed (or
    a new run started from a finished run's checkpoint) trains no step, so its final weights are
    those of the checkpoint it started from.
    """
    step = int(run.trainer.global_step)
    for callback in run.trainer.checkpoint_callbacks:
        if isinstance(callback, LastCheckpoint) and callback.saved_step == step:
            return str(callback.last_model_path)
    if run.ckpt_path is not None and run.resumed_step == step:
        return run.ckpt_path
    return None


def report(
    run: Run,
    columns: dict[str, dict[str, float]],
    seconds: float,
    final: str | None,
    selected: str | None,
) -> dict[str, Any]:
    """results.json (written on rank 0) and the final table; returns the results dict."""
    cfg, trainer, module = run.cfg, run.trainer, run.module
    if module.last_eval is not None and module.last_eval.metrics:
        columns["trained"] = dict(module.last_eval.metrics)
    if cfg.eval.get("lfw_root") and trainer.is_global_zero and "trained" in columns:
        # a face model trained on one set, verified on LFW's pairs (DESIGN 6)
        columns["trained"].update(
            lfw_verification(
                module.model,
                str(cfg.eval.lfw_root),
                run.datamodule.transform(train=False),
                int(cfg.eval.batch_size),
                module.device,
            )
        )
    checkpoint = trainer.checkpoint_callback
    result = {
        "dataset": str(cfg.dataset.name),
        "metrics": columns.get("trained", {}),
        "baselines": {k: v for k, v in columns.items() if k != "trained"},
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "train_seconds": round(seconds, 2),
        "nonfinite_steps": module.nonfinite.skipped,
        "dropped_eval_images": run.datamodule.dropped_images,  # skip_bad_images: left out, per split
        "resumed_from": run.ckpt_path,
        # the checkpoint whose weights gave `metrics` (dml-eval ckpt=<it> reproduces them)
        "metrics_from": selected
        or final
        or "final weights (not saved: callbacks.last_checkpoint is off)",
        "best_checkpoint": (checkpoint.best_model_path or None)
        if isinstance(checkpoint, ModelCheckpoint)
        else None,
        "last_checkpoint": final,
        "config": redact_secrets(OmegaConf.to_container(cfg, resolve=True)),
    }
    if trainer.is_global_zero:
        atomic_write_json(run.out / "results.json", result)
        if columns:
            print(f"\nFinal metrics on {cfg.dataset.name} ({', '.join(run.datamodule.eval_sets)}):")
            print(format_table(columns, first=str(cfg.monitor)))
        print(f"\nrun folder: {run.out}")
    return result


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate one run: build, check resume, fit, select, report. Returns the dict also
    written to `<run>/results.json`."""
    out = Path(str(cfg.paths.output_dir))
    with user_errors(out):
        run = build_run(cfg)
    columns = baseline_columns(run)
    start = time.time()
    fit(run)
    seconds = time.time() - start
    final = final_checkpoint(run)
    selected = select(run)
    return report(run, columns, seconds, final, selected)
