"""Claim W1: which distances each negative strategy picks on a trained model's batches (Wu et al. Fig. 3b).

The run's final weights (checkpoints/last.ckpt) embed the first `batches` training batches of its own
data pipeline (P classes x M images, the training transform; with `backbone.frozen=true` the
trunk's cached features) in training mode, as the sampler sees them while training (BatchNorm on
the batch's statistics; without gradients). On each batch every
negative strategy (random, hard, semi-hard, distance weighted; every positive pair as anchor and
positive, the strategies' defaults) samples from the same distance matrix, and the distances of
the negatives it picked are pooled. Written to `<run>/negative_distances.json`: per strategy a
histogram over [0, 2], the 5th and 95th percentiles and their difference (the width claim W1
compares), and the histogram of every negative pair of the batches for reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dml.io import atomic_write_json
from dml.reproduce.claims import NEGATIVE_STRATEGIES
from dml.reproduce.measures import NEGATIVES_FILE

BINS = np.linspace(0.0, 2.0, 81)
QUANTILES = (0.05, 0.95)


def summarize(distances: np.ndarray) -> dict[str, Any]:
    """Histogram counts over BINS, the 5th/95th percentiles and the width between them."""
    distances = np.asarray(distances, dtype=np.float64)
    counts, _ = np.histogram(np.clip(distances, 0.0, 2.0), bins=BINS)
    lo, hi = np.quantile(distances, QUANTILES) if len(distances) else (np.nan, np.nan)
    return {
        "n": int(len(distances)),
        "counts": counts.tolist(),
        "q05": float(lo),
        "q95": float(hi),
        "width": float(hi - lo),
    }


def sampled_negatives(
    embeddings: torch.Tensor, labels: torch.Tensor, seed: int
) -> dict[str, np.ndarray]:
    """{strategy: distances of the negatives it picks} on one batch, plus `all` (every negative pair)."""
    from dml.distances import pairwise_distance
    from dml.samplers import TupleSampler
    from dml.samplers.tuples import class_masks

    distances = pairwise_distance(embeddings)
    _, negative = class_masks(labels)
    out = {"all": distances[torch.triu(negative, diagonal=1)].numpy()}
    for i, strategy in enumerate(NEGATIVE_STRATEGIES):
        sampler = TupleSampler(positive="all", negative=strategy, seed=seed * 100 + i)
        sampler(embeddings, labels, distances)
        out[strategy] = sampler.last_distances["negative"].numpy()
    return out


def analyse_run(folder: Path, batches: int, seed: int) -> dict[str, Any]:
    """W1's numbers for one finished run (written to `<folder>/negative_distances.json`, reused when there)."""
    path = folder / NEGATIVES_FILE
    if path.is_file():
        found = json.loads(path.read_text())
        if found.get("requested_batches") == batches:
            return found
    from omegaconf import OmegaConf

    from dml.training.checkpointing import load_model_weights
    from dml.training.evaluate_checkpoint import load_checkpoint
    from dml.training.run import build_datamodule, build_model

    ckpt_path = folder / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint(ckpt_path)
    cfg = OmegaConf.create(ckpt["hyper_parameters"]["config"])
    model = build_model(cfg)
    load_model_weights(model, ckpt, ckpt_path, cfg)
    # training mode (BatchNorm on the batch's statistics, no gradient): the embeddings the sampler
    # sees while training; nothing is written back, the checkpoint stays as it is
    model.train()
    datamodule = build_datamodule(cfg, model)  # backbone.frozen=true: the trunk's cached features
    datamodule.setup("fit")
    pooled: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for b, (x, y) in enumerate(datamodule.train_dataloader()):
            if b >= batches:
                break
            for name, d in sampled_negatives(
                model(x).float(), torch.as_tensor(y), seed * 1000 + b
            ).items():
                pooled.setdefault(name, []).append(d)
    joined = {name: np.concatenate(parts) for name, parts in pooled.items()}
    result = {
        "checkpoint": str(ckpt_path),
        "requested_batches": batches,
        "batches": len(pooled.get("all", [])),
        "bins": BINS.tolist(),
        "all_negatives": summarize(joined.get("all", np.empty(0))),
        "strategies": {s: summarize(joined[s]) for s in NEGATIVE_STRATEGIES if s in joined},
    }
    atomic_write_json(path, result)
    return result
