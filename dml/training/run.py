"""`dml-train` as a Python function: compose objects from the config, train, evaluate, report."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch import nn

from dml.config import ConfigError, validate, validate_class_sizes
from dml.data.datamodule import DMLDataModule
from dml.data.features import FeatureDataModule, torch_threads
from dml.data.folds import fold_options
from dml.io import atomic_write_json, remove_unstarted_run_dir
from dml.losses.build import build_loss, needs_classes, takes_references, uses_class_weights
from dml.losses.memory import CrossBatchMemory
from dml.models import EmbeddingModel
from dml.models.freeze import freeze_batchnorm
from dml.models.frozen import FrozenTrunkEmbedding
from dml.models.input_check import check_input_size
from dml.training.callbacks import LastCheckpoint
from dml.training.checkpointing import (
    AtomicCheckpointIO,
    check_compatible,
    read_checkpoint,
    remove_stale_temp_files,
    resume_checkpoint,
)
from dml.training.console import quiet_known_noise
from dml.training.evaluation import Evaluator, format_table, lfw_verification
from dml.training.guards import redact_secrets
from dml.training.loggers import build_loggers, finish_loggers
from dml.training.module import DMLModule
from dml.training.objective import TrainingObjective

log = logging.getLogger("dml")
# faiss announces at INFO which CPU build it loaded; Hydra logs INFO to the console
logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def frozen_trunk(cfg: DictConfig) -> bool:
    """True when `backbone.frozen=true`: the trunk is fixed and only the head trains, on cached features."""
    return bool(cfg.backbone.get("frozen", False))


def build_model(cfg: DictConfig) -> EmbeddingModel:
    """Backbone from `backbone.net`, linear head to `embedding_dim`, L2 normalisation (with
    `backbone.frozen=true` a FrozenTrunkEmbedding: the same modules, only the head trains)."""
    backbone = hydra.utils.instantiate(cfg.backbone.net)
    if cfg.backbone.get("freeze_bn", False):
        freeze_batchnorm(backbone)  # eval-mode statistics, no gradient to its affine parameters
    if frozen_trunk(cfg):
        return FrozenTrunkEmbedding(backbone, int(cfg.embedding_dim))
    return EmbeddingModel(backbone, int(cfg.embedding_dim))


def build_datamodule(cfg: DictConfig, model: EmbeddingModel | None = None) -> DMLDataModule:
    """The run's data; with `backbone.frozen=true` a FeatureDataModule feeding `model`'s trunk's
    cached features (under `paths.cache_dir`/features)."""
    options = {
        "normalize": str(cfg.backbone.get("normalize", "none")),
        "eval_batch_size": int(cfg.eval.batch_size),
        "seed": int(cfg.seed),
    }
    if not frozen_trunk(cfg):
        return DMLDataModule(cfg.dataset, **options)
    if model is None:
        raise TypeError(
            "backbone.frozen=true: build_datamodule needs the model whose trunk it caches"
        )
    paths = cfg.get("paths") or {}
    cache_dir = paths.get("cache_dir") or Path(str(paths.get("data_dir", "."))) / "cache"
    return FeatureDataModule(cfg.dataset, trunk=model.backbone, cache_dir=str(cache_dir), **options)


def _instantiate(node: DictConfig) -> Any:
    """hydra.utils.instantiate, with what the class raised about its arguments as a ConfigError."""
    try:
        return hydra.utils.instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, (ValueError, TypeError)):
            raise ConfigError(str(err.__cause__)) from err
        raise


def build_objective(cfg: DictConfig, train_labels: Any = None) -> TrainingObjective:
    """Loss, tuple sampler (`sampler`, optional) and cross-batch memory (`xbm.memory_size` > 0).

    train_labels: the train split's labels, for a loss that needs the number of classes
    (dml.losses.build fills `num_classes` and `embedding_size` in); the loss then sees each label
    as its class's index. The classes check their own arguments; a bad value is a ConfigError
    naming the key. A class-weight loss (proxies) with XBM is refused: it takes no references.
    """
    sampler = _instantiate(cfg.sampler) if cfg.get("sampler") else None
    classes = None if train_labels is None else np.unique(np.asarray(train_labels))
    loss = build_loss(
        cfg.loss,
        num_classes=None if classes is None else len(classes),
        embedding_dim=int(cfg.embedding_dim),
    )
    xbm = cfg.get("xbm") or {}
    size = int(xbm.get("memory_size") or 0)
    if size > 0 and not takes_references(loss):
        raise ConfigError(
            f"xbm.memory_size={size}: loss {type(loss).__name__} compares each embedding with its own "
            "class weights, not with other embeddings, so a cross-batch memory has nothing to add; "
            "set xbm.memory_size=0"
        )
    if sampler is not None and uses_class_weights(loss):
        log.info(
            "loss %s: the sampler's tuples weight each item by how often it is picked "
            "(pytorch-metric-learning's miner weights); without a sampler (~sampler) every item counts alike",
            type(loss).__name__,
        )
    memory = CrossBatchMemory(size, start=int(xbm.get("memory_start") or 0)) if size > 0 else None
    # a loss built with the class count indexes its parameters by class: it sees class indices
    indexed = classes is not None and needs_classes(cfg.loss)
    return TrainingObjective(loss, sampler, memory, classes=classes if indexed else None)


def loss_group_options(node: Any) -> dict[str, Any]:
    """`optim.loss_options`: more per-group settings of the loss's parameter group (momentum, betas,
    eps: whatever the optimizer takes per group); its lr and weight decay have their own keys."""
    options = (
        OmegaConf.to_container(node, resolve=True)
        if isinstance(node, DictConfig)
        else dict(node or {})
    )
    for key, own in (
        ("lr", "optim.loss_lr"),
        ("weight_decay", "optim.loss_weight_decay"),
        ("params", None),
    ):
        if key in options:
            fix = f"set {own} instead" if own else "the loss's parameters are always its group's"
            raise ConfigError(f"optim.loss_options.{key} is not allowed: {fix}")
    return options


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
        loss_weight_decay=float(cfg.optim.get("loss_weight_decay") or 0.0),
        loss_options=loss_group_options(cfg.optim.get("loss_options")),
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


# what a user's config, data or machine can cause; a bug in dml is none of these
_USER_CAUSES = (ValueError, TypeError, FileNotFoundError, KeyError, MisconfigurationException)
# what a class raised about its arguments while Hydra instantiated it (a missing file or package too)
_USER_INSTANTIATION_CAUSES = (*_USER_CAUSES, OSError, ImportError)


def as_user_error(err: BaseException) -> ConfigError | None:
    """The ConfigError (one line, exit 2) that `err` stands for when a user caused it by config, data
    or hardware (a bad value, a missing file, weights or package, no GPU); None when it is a bug."""
    if isinstance(err, ConfigError):
        return err
    if isinstance(err, InstantiationException):
        cause = err.__cause__
        if isinstance(cause, _USER_INSTANTIATION_CAUSES):
            return as_user_error(cause) or ConfigError(str(cause))
        return None
    if isinstance(err, MisconfigurationException):  # Lightning refused a trainer setting
        return ConfigError(f"trainer: {err}")
    if isinstance(err, _USER_CAUSES):
        return ConfigError(str(err))
    return None


def check_accelerator(trainer: DictConfig) -> None:
    """trainer=gpu (accelerator gpu or cuda) on a machine where torch sees no CUDA GPU is a
    ConfigError naming the fix, not Lightning's "No supported gpu backend found!"."""
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU, but torch {torch.__version__} "
            f"({build}) finds none on this machine; run on a GPU node, or use trainer=default "
            "(the GPU when there is one, else the CPU) or trainer=cpu"
        )


@contextmanager
def user_errors(out: Path) -> Iterator[None]:
    """Errors a user causes by config, data or hardware, while a run is built, become one
    ConfigError line (dml-train exits 2); whatever fails, a run folder holding nothing but Hydra's
    own files (the run never started) is removed."""
    try:
        yield
    except Exception as err:
        remove_unstarted_run_dir(out)
        user = as_user_error(err)
        if user is None or user is err:
            raise
        raise user from err


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


def check_images_fit(cfg: DictConfig, network: nn.Module, datamodule: DMLDataModule) -> None:
    """One forward pass of `network` on images of the eval transform's size: an image size the
    backbone cannot take stops the run here, with the option to change, not inside the network."""
    first_eval = next(iter(datamodule.eval_sets.values()))[0][0]  # the eval transform's output
    target = str(cfg.backbone.net.get("_target_"))
    check_input_size(network, tuple(first_eval.shape), target)


def build_run(cfg: DictConfig) -> Run:
    """Check the config, then build objective, data, evaluator, module, loggers and trainer.

    The objective (loss, sampler, XBM) is built before the data, so the classes' own checks of
    their arguments fire before anything loads; a loss that needs the number of training classes
    (proxies, per-class beta) is built once the train split is known.
    """
    out = Path(str(cfg.paths.output_dir))
    validate(cfg)
    check_accelerator(cfg.trainer)
    if str(cfg.monitor).startswith("val/") and fold_options(cfg.dataset) is None:
        raise ConfigError(
            f"monitor={cfg.monitor} needs a validation fold, but dataset.folds is null; set dataset.folds=4 "
            "dataset.fold=0 (class-disjoint folds of the train split) or monitor a test metric"
        )
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    objective = None if needs_classes(cfg.loss) else build_objective(cfg)
    # a frozen trunk's features are cached by the datamodule, which needs the model first
    model = build_model(cfg) if frozen_trunk(cfg) else None
    datamodule = build_datamodule(cfg, model)
    datamodule.setup("fit")
    if model is not None:  # before the frozen trunk's features are extracted from the images
        check_images_fit(cfg, model.backbone, datamodule)
    validate_class_sizes(cfg, datamodule.train_set.labels)
    if objective is None:
        objective = build_objective(cfg, datamodule.train_set.labels)
    evaluator = Evaluator.from_config(cfg, datamodule)
    module = build_module(cfg, model=model, evaluator=evaluator, objective=objective)
    if model is None:
        check_images_fit(cfg, module.model, datamodule)
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
    if frozen_trunk(cfg) and trainer.world_size > 1:
        raise ConfigError(
            f"backbone.frozen=true trains on one device, but the trainer runs {trainer.world_size} processes; "
            "set trainer.devices=1 (a head on cached features needs no more)"
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
        features = isinstance(run.datamodule, FeatureDataModule)  # loaders of cached trunk features
        if cfg.eval.get("raw_baseline"):
            pixels = run.datamodule.image_dataloaders() if features else loaders
            columns["raw pixels"] = run.evaluator.score_raw_pixels(pixels)
        if cfg.eval.get("backbone_baseline"):
            # a frozen trunk's loaders already hold its pooled features: scored as they are
            columns["backbone"] = (
                run.evaluator.score_raw_pixels(loaders)
                if features
                else run.evaluator.score_backbone(run.module.model, loaders)
            )
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
        if run.cfg.get("resume"):  # resume=true continues its own checkpoints/ folder, as intended
            warnings.filterwarnings(
                "ignore", message="Checkpoint directory .* exists and is not empty"
            )
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
    quiet_known_noise()  # Lightning's litlogger advert, torch's LeafSpec deprecation: named, not blanket
    with user_errors(out):
        run = build_run(cfg)
    # a head on cached features on a CPU: tensors so small that threads cost more than they give
    # (2.6x faster on a busy 2-core machine); feature extraction still uses every thread
    cpu_head = frozen_trunk(cfg) and isinstance(run.trainer.accelerator, CPUAccelerator)
    try:
        with torch_threads(1) if cpu_head else nullcontext():
            columns = baseline_columns(run)
            start = time.time()
            fit(run)
            seconds = time.time() - start
            final = final_checkpoint(run)
            selected = select(run)
            result = report(run, columns, seconds, final, selected)
    except BaseException:  # a crash or Ctrl-C: the W&B run ends as failed, not left open
        finish_loggers(run.trainer.loggers, failed=True)
        raise
    for line in finish_loggers(run.trainer.loggers):  # where an offline W&B run is, how to sync it
        print(line)
    return result
