"""Re-embed the eval split(s) of a run from one of its checkpoints, or from several concatenated, and score them (dml-eval)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from dml.training.checkpointing import checkpoint_config, load_model_weights, read_checkpoint
from dml.training.evaluation import Evaluator, embed


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a dml checkpoint safely (weights_only=True) and check it carries a run config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ckpt={str(path)!r} does not exist; pass a .ckpt from a run's checkpoints/ folder"
        )
    ckpt = read_checkpoint(
        path
    )  # weights_only=True; a truncated or foreign file is a clear ConfigError
    checkpoint_config(ckpt, path)
    return ckpt


def _checkpoint_model_and_data(
    path: str | Path, overrides: Sequence[str] = ()
) -> tuple[Any, Any, Any, str]:
    """(model with the checkpoint's weights, on the device; its run's datamodule, set up; config; device)."""
    from dml.training.run import build_datamodule, build_model

    ckpt = load_checkpoint(path)
    cfg = OmegaConf.create(ckpt["hyper_parameters"]["config"])
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    model = build_model(cfg)
    load_model_weights(model, ckpt, path, cfg)  # a shape mismatch names both sides
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    datamodule = build_datamodule(cfg, model)  # backbone.frozen=true: this trunk's cached features
    datamodule.setup("validate")
    return model, datamodule, cfg, device


def evaluate_checkpoint(
    path: str | Path, overrides: Sequence[str] = ()
) -> tuple[dict[str, float], Any]:
    """Metrics of the checkpoint's model on its run's eval split; `overrides` are `key=value` strings."""
    model, datamodule, cfg, device = _checkpoint_model_and_data(path, overrides)
    evaluator = Evaluator.from_config(cfg, datamodule)
    return evaluator.score_model(model, datamodule.eval_dataloaders(), device=device), cfg


def concatenated_embeddings(
    paths: Sequence[str | Path], overrides: Sequence[str] = ()
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], Any, Any]:
    """Each checkpoint's eval embeddings L2-normalised, joined along the features and normalised again.

    Each checkpoint's own config builds its data, with any training fold switched off (only the test
    split, or query and gallery, is embedded); every model must embed the same items. Returns the
    joined splits and the first checkpoint's config and evaluator.
    """
    if not paths:
        raise ValueError("ckpt=[...] names no checkpoint; give the checkpoints to concatenate")
    no_folds = [*overrides, "dataset.folds=null", "dataset.fold=null"]
    parts: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
    first_cfg, evaluator = None, None
    for path in paths:
        model, datamodule, cfg, device = _checkpoint_model_and_data(path, no_folds)
        if first_cfg is None:
            first_cfg, evaluator = cfg, Evaluator.from_config(cfg, datamodule)
        elif cfg.dataset.name != first_cfg.dataset.name:
            raise ValueError(
                f"ckpt={path} was trained for dataset={cfg.dataset.name}, ckpt={paths[0]} for "
                f"dataset={first_cfg.dataset.name}; concatenate checkpoints of one dataset"
            )
        splits = {
            name: embed(model, dl, device=device)
            for name, dl in datamodule.eval_dataloaders().items()
        }
        if parts and (
            splits.keys() != parts[0].keys()
            or any(not torch.equal(splits[n][1], parts[0][n][1]) for n in splits)
        ):
            raise ValueError(
                f"ckpt={path} embeds other eval items than ckpt={paths[0]} (split names or labels differ); "
                "its config points at other data: pass the same paths.data_dir / dataset overrides to both"
            )
        parts.append(splits)
    joined = {
        name: (
            F.normalize(torch.cat([F.normalize(p[name][0], dim=1) for p in parts], dim=1), dim=1),
            parts[0][name][1],
        )
        for name in parts[0]
    }
    return joined, first_cfg, evaluator


def evaluate_concatenated(
    paths: Sequence[str | Path], overrides: Sequence[str] = ()
) -> tuple[dict[str, float], Any]:
    """Metrics of several checkpoints' test embeddings concatenated, and the first checkpoint's config.

    The "concatenated" column of Musgrave et al. 2020: the models of the class-disjoint training
    folds embed the same test split and the joined vectors are scored once.
    """
    if len(paths) < 2:
        raise ValueError(
            f"ckpt=[...] needs at least two checkpoints to concatenate, got {len(paths)}"
        )
    splits, cfg, evaluator = concatenated_embeddings(paths, overrides)
    return evaluator.score(splits), cfg
