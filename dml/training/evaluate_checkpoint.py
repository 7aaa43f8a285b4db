"""Re-embed the eval split(s) of a run from one of its checkpoints and score them (dml-eval)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from dml.training.checkpointing import checkpoint_config, load_model_weights, read_checkpoint
from dml.training.evaluation import embed, score


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a dml checkpoint safely (weights_only=True) and check it carries a run config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={str(path)!r} does not exist; pass a .ckpt from a run's checkpoints/ folder")
    ckpt = read_checkpoint(path)  # weights_only=True; a truncated or foreign file is a clear ConfigError
    checkpoint_config(ckpt, path)
    return ckpt


def evaluate_checkpoint(path: str | Path, overrides: Sequence[str] = ()) -> tuple[dict[str, float], Any]:
    """Metrics of the checkpoint's model on its run's eval split; `overrides` are `key=value` strings."""
    from dml.training.run import build_datamodule, build_model

    ckpt = load_checkpoint(path)
    cfg = OmegaConf.create(ckpt["hyper_parameters"]["config"])
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    model = build_model(cfg)
    load_model_weights(model, ckpt, path, cfg)  # a shape mismatch names both sides
    datamodule = build_datamodule(cfg)
    datamodule.setup("validate")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    metrics_cfg = cfg.dataset.get("metrics", {}) or {}
    splits = {name: embed(model, dl, device=device) for name, dl in datamodule.eval_dataloaders().items()}
    metrics = score(
        splits,
        ks=metrics_cfg.get("ks", (1, 2, 4, 8)),
        nmi=bool(metrics_cfg.get("nmi", True)),
        pairs=datamodule.verification_pairs(),
    )
    return metrics, cfg
