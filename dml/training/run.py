"""`dml-train` as a Python function: compose objects from the config, train, evaluate, report."""

from __future__ import annotations

import logging
import shutil
import time
import warnings
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
from dml.models import EmbeddingModel
from dml.models.freeze import freeze_batchnorm
from dml.training.checkpointing import (
    AtomicCheckpointIO,
    check_compatible,
    read_checkpoint,
    remove_stale_temp_files,
    resume_checkpoint,
)
from dml.training.evaluation import (
    embed,
    format_table,
    lfw_verification,
    metric_options,
    raw_pixels,
    score,
)
from dml.training.guards import redact_secrets
from dml.training.loggers import build_loggers
from dml.training.module import DMLModule

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


def split_loss_config(node: DictConfig) -> tuple[DictConfig, dict[str, int]]:
    """The loss node without the XBM options, and those options (`memory_size`, `memory_start`).

    XBM wraps any loss in the training module, so its options sit in the loss node
    (`loss.memory_size=4096`) but are not arguments of the loss class.
    """
    node = OmegaConf.to_container(node, resolve=True)
    memory = {key: int(node.pop(key, 0) or 0) for key in ("memory_size", "memory_start")}
    for key, value in memory.items():
        if value < 0:
            raise ConfigError(
                f"loss.{key}={value} is not valid: expected a non-negative integer (0 turns XBM off)"
            )
    return OmegaConf.create(node), memory


def _channels_last_input(module: torch.nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: image batches [N, C, H, W] enter the model in channels_last format."""
    x = args[0]
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def build_module(cfg: DictConfig, model: EmbeddingModel | None = None) -> DMLModule:
    """The LightningModule with sampler, loss, optimizer and scheduler from the config."""
    sampler = hydra.utils.instantiate(cfg.sampler) if cfg.get("sampler") else None
    loss_cfg, memory = split_loss_config(cfg.loss)
    loss = hydra.utils.instantiate(loss_cfg)
    scheduler = hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    ks, nmi = metric_options(cfg)
    model = model if model is not None else build_model(cfg)
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_channels_last_input)
    if cfg.get("compile"):
        model.compile()  # in place: parameter names and checkpoints stay those of the plain model
    return DMLModule(
        model=model,
        sampler=sampler,
        loss=loss,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=scheduler,
        loss_lr=float(cfg.optim.loss_lr),
        backbone_lr_mult=float(cfg.optim.backbone_lr_mult),
        ks=ks,
        nmi=nmi,
        config=redact_secrets(OmegaConf.to_container(cfg, resolve=True)),
        nonfinite=str(cfg.get("nonfinite", "skip")),
        nonfinite_patience=int(cfg.get("nonfinite_patience", 20)),
        memory_size=memory["memory_size"],
        memory_start=memory["memory_start"],
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


def _output_dir(cfg: DictConfig) -> Path:
    return Path(str(cfg.paths.output_dir))


def _clean_failed_run_dir(out: Path) -> None:
    """Remove a run folder that holds nothing but Hydra's own files (the run never started)."""
    if not out.is_dir():
        return
    leftovers = [p for p in out.iterdir() if p.name != ".hydra" and not p.name.endswith(".log")]
    if not leftovers:
        shutil.rmtree(out, ignore_errors=True)


def _selected_on_validation(cfg: DictConfig, checkpoint: Any) -> str | None:
    """The best checkpoint when it was picked on a validation fold's metric (monitor=val/...), else None.

    Only a held-out training fold may select the model whose test metrics are reported; a run
    that monitors a test metric reports its last epoch.
    """
    if not str(cfg.monitor).startswith("val/") or not isinstance(checkpoint, ModelCheckpoint):
        return None
    if checkpoint.monitor != f"eval/{cfg.monitor}" or not checkpoint.best_model_path:
        return None
    return str(checkpoint.best_model_path)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate one run; returns the dict also written to `<run>/results.json`."""
    out = _output_dir(cfg)
    try:
        validate(cfg)
        if str(cfg.monitor).startswith("val/") and fold_options(cfg.dataset) is None:
            raise ConfigError(
                f"monitor={cfg.monitor} needs a validation fold, but dataset.folds is null; set dataset.folds=4 "
                "dataset.fold=0 (class-disjoint folds of the train split) or monitor a test metric"
            )
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        datamodule = build_datamodule(cfg)
        datamodule.setup("fit")
        validate_class_sizes(cfg, datamodule.train_set.labels)
        module = build_module(cfg)
        module.eval_split_names = list(datamodule.eval_sets)
        module.verification_pairs = datamodule.verification_pairs()
        module.label_levels = datamodule.label_levels()
        ckpt_dir = out / "checkpoints"
        ckpt_path = resume_checkpoint(cfg, ckpt_dir)
        resumed = read_checkpoint(ckpt_path, mmap=True) if ckpt_path is not None else None
        if resumed is not None:  # fail now, with both sides named, rather than inside Lightning
            check_compatible(resumed, ckpt_path, module.state_dict(), cfg)
        # resume=true continues this run folder's logs; ckpt_path= starts a new run from those weights
        same_run = resumed is not None and bool(cfg.get("resume")) and not cfg.get("ckpt_path")
        loggers = build_loggers(cfg.get("logger"), resume_step=int(resumed.get("global_step", 0)) if same_run else None)
        callbacks = build_callbacks(
            cfg.get("callbacks"), progress_bar=bool(cfg.trainer.get("enable_progress_bar", True))
        )
        # checkpoints are written atomically and loaded with weights_only=True (dml.training.checkpointing)
        plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
        trainer: pl.Trainer = hydra.utils.instantiate(
            cfg.trainer, logger=loggers or False, callbacks=callbacks, **plugins
        )
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

    columns: dict[str, dict[str, float]] = {}
    ks, nmi = module.ks, module.nmi
    if trainer.is_global_zero and (cfg.eval.get("raw_baseline") or cfg.eval.get("before_training")):
        loaders = datamodule.eval_dataloaders()  # one set of loaders for both baseline columns
        if cfg.eval.get("raw_baseline"):
            columns["raw pixels"] = score(
                {n: raw_pixels(dl) for n, dl in loaders.items()}, ks=ks, nmi=nmi, pairs=module.verification_pairs,
                levels=module.label_levels,
            )
        if cfg.eval.get("before_training"):
            columns["untrained"] = score(
                {n: embed(module.model, dl) for n, dl in loaders.items()}, ks=ks, nmi=nmi, pairs=module.verification_pairs,
                levels=module.label_levels,
            )

    checkpoint = trainer.checkpoint_callback
    remove_stale_temp_files(ckpt_dir)  # a save that was killed leaves its temporary file
    start = time.time()
    with warnings.catch_warnings():
        # DMLDataModule resumes its batch sampler mid-epoch itself, which Lightning cannot see
        warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    if ckpt_path is not None and not module.last_metrics:
        # resumed a finished run, or after the last epoch's evaluation: score the final weights
        trainer.validate(module, datamodule=datamodule, verbose=False)
    seconds = time.time() - start
    selected = _selected_on_validation(cfg, checkpoint)
    if selected is not None:
        # class-disjoint folds: the reported metrics are those of the checkpoint the val fold picked
        trainer.validate(module, datamodule=datamodule, ckpt_path=selected, verbose=False, weights_only=True)
    if module.last_metrics:
        columns["trained"] = dict(module.last_metrics)
    if cfg.eval.get("lfw_root") and trainer.is_global_zero and "trained" in columns:
        # a face model trained on one set, verified on LFW's pairs (DESIGN 6)
        columns["trained"].update(
            lfw_verification(
                module.model, str(cfg.eval.lfw_root), datamodule.transform(train=False), int(cfg.eval.batch_size), module.device
            )
        )

    result = {
        "dataset": str(cfg.dataset.name),
        "metrics": columns.get("trained", {}),
        "baselines": {k: v for k, v in columns.items() if k != "trained"},
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "train_seconds": round(seconds, 2),
        "nonfinite_steps": module.nonfinite.skipped,
        "resumed_from": ckpt_path,
        "metrics_from": selected or "last epoch",
        "best_checkpoint": (checkpoint.best_model_path or None)
        if isinstance(checkpoint, ModelCheckpoint)
        else None,
        "last_checkpoint": str(ckpt_dir / "last.ckpt")
        if (ckpt_dir / "last.ckpt").is_file()
        else None,
        "config": redact_secrets(OmegaConf.to_container(cfg, resolve=True)),
    }
    if trainer.is_global_zero:
        atomic_write_json(out / "results.json", result)
        if columns:
            print(f"\nFinal metrics on {cfg.dataset.name} ({', '.join(datamodule.eval_sets)}):")
            print(format_table(columns, first=str(cfg.monitor)))
        print(f"\nrun folder: {out}")
    return result
