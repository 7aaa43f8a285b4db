"""`dml-train` as a Python function: compose objects from the config, train, evaluate, report."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from dml.config import ConfigError, validate
from dml.data.datamodule import DMLDataModule
from dml.io import atomic_write_json
from dml.models import EmbeddingModel
from dml.training.evaluation import embed, format_table, raw_pixels, score
from dml.training.loggers import build_loggers
from dml.training.module import DMLModule

log = logging.getLogger("dml")


def build_model(cfg: DictConfig) -> EmbeddingModel:
    """Backbone from `backbone.net`, linear head to `embedding_dim`, L2 normalisation."""
    backbone = hydra.utils.instantiate(cfg.backbone.net)
    return EmbeddingModel(backbone, int(cfg.embedding_dim))


def build_datamodule(cfg: DictConfig) -> DMLDataModule:
    return DMLDataModule(
        cfg.dataset,
        normalize=str(cfg.backbone.get("normalize", "none")),
        eval_batch_size=int(cfg.eval.batch_size),
        seed=int(cfg.seed),
    )


def build_module(cfg: DictConfig, model: EmbeddingModel | None = None) -> DMLModule:
    """The LightningModule with sampler, loss, optimizer and scheduler from the config."""
    sampler = hydra.utils.instantiate(cfg.sampler) if cfg.get("sampler") else None
    loss = hydra.utils.instantiate(cfg.loss)
    scheduler = hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    metrics = cfg.dataset.get("metrics", {}) or {}
    return DMLModule(
        model=model if model is not None else build_model(cfg),
        sampler=sampler,
        loss=loss,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=scheduler,
        loss_lr=float(cfg.optim.loss_lr),
        backbone_lr_mult=float(cfg.optim.backbone_lr_mult),
        ks=metrics.get("ks", (1, 2, 4, 8)),
        nmi=bool(metrics.get("nmi", True)),
        config=OmegaConf.to_container(cfg, resolve=True),
    )


def build_callbacks(cfg: DictConfig | None) -> list[pl.Callback]:
    """Instantiate every node of the `callbacks` group that names a `_target_`."""
    return [hydra.utils.instantiate(node) for node in (cfg or {}).values() if isinstance(node, DictConfig) and "_target_" in node]


def _output_dir(cfg: DictConfig) -> Path:
    return Path(str(cfg.paths.output_dir))


def _clean_failed_run_dir(out: Path) -> None:
    """Remove a run folder that holds nothing but Hydra's own files (the run never started)."""
    if not out.is_dir():
        return
    leftovers = [p for p in out.iterdir() if p.name != ".hydra" and not p.name.endswith(".log")]
    if not leftovers:
        shutil.rmtree(out, ignore_errors=True)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate one run; returns the dict also written to `<run>/results.json`."""
    out = _output_dir(cfg)
    try:
        validate(cfg)
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        datamodule = build_datamodule(cfg)
        datamodule.setup("fit")
        module = build_module(cfg)
        module.eval_split_names = list(datamodule.eval_sets)
        loggers = build_loggers(cfg.get("logger"))
        callbacks = build_callbacks(cfg.get("callbacks"))
        trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    except ConfigError:
        _clean_failed_run_dir(out)
        raise
    except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
        _clean_failed_run_dir(out)
        raise ConfigError(str(err)) from err

    columns: dict[str, dict[str, float]] = {}
    ks, nmi = module.ks, module.nmi
    if cfg.eval.get("raw_baseline") and trainer.is_global_zero:
        loaders = datamodule.eval_dataloaders()
        columns["raw pixels"] = score({n: raw_pixels(dl) for n, dl in loaders.items()}, ks=ks, nmi=nmi)
    if cfg.eval.get("before_training") and trainer.is_global_zero:
        loaders = datamodule.eval_dataloaders()
        columns["untrained"] = score({n: embed(module.model, dl) for n, dl in loaders.items()}, ks=ks, nmi=nmi)

    ckpt_dir = out / "checkpoints"
    checkpoint = trainer.checkpoint_callback
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None and cfg.get("resume") and (ckpt_dir / "last.ckpt").is_file():
        ckpt_path = str(ckpt_dir / "last.ckpt")
    start = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    seconds = time.time() - start
    if module.last_metrics:
        columns["trained"] = dict(module.last_metrics)

    result = {
        "dataset": str(cfg.dataset.name),
        "metrics": columns.get("trained", {}),
        "baselines": {k: v for k, v in columns.items() if k != "trained"},
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "train_seconds": round(seconds, 2),
        "best_checkpoint": (checkpoint.best_model_path or None) if isinstance(checkpoint, ModelCheckpoint) else None,
        "last_checkpoint": str(ckpt_dir / "last.ckpt") if (ckpt_dir / "last.ckpt").is_file() else None,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if trainer.is_global_zero:
        atomic_write_json(out / "results.json", result)
        if columns:
            print(f"\nFinal metrics on {cfg.dataset.name} ({', '.join(datamodule.eval_sets)}):")
            print(format_table(columns, first=str(cfg.monitor)))
        print(f"\nrun folder: {out}")
    return result
