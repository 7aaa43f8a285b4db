"""Cached trunk features: the data side of `backbone.frozen=true` (fast studies on a fixed trunk).

A frozen trunk maps an image to the same pooled features in every run, so they are computed once
per (trunk weights, dataset split, eval transform) and stored under `<cache_dir>/features/<key>.pt`;
training and evaluation then feed those feature vectors to the embedding head only. Every item,
the training split's too, goes through the dataset's EVAL transform: cached features are never
augmented. The key hashes everything that determines the features (the trunk's class and the
bytes of its weights and buffers, the split's dataset config, the eval transform and input
normalisation, the items' count and labels, this extractor's version), so a changed image size,
dataset option or backbone gets its own file, and a file is reused by every later run and by
parallel processes. Files are written atomically (temporary file, then rename: two writers leave
one whole file); a file that cannot be read or does not match its key is rebuilt, not used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dml.data.datamodule import DMLDataModule
from dml.data.folds import ClassSubset
from dml.io import atomic_write_bytes

log = logging.getLogger("dml")

# bump when the extraction below changes what a cache file holds: old files are then not used
EXTRACTOR_VERSION = 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(int(n), 1))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FeatureSet(Dataset):
    """(features[i], label[i]) pairs; `.labels` like the image datasets (for the batch sampler)."""

    def __init__(self, features: torch.Tensor, labels: Any) -> None:
        self.features = features
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.features) != len(self.labels):
            raise ValueError(f"{len(self.features)} feature rows for {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.features[index], int(self.labels[index])


def weights_digest(module: nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every parameter and buffer of `module`."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _labels_digest(labels: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def feature_key(
    trunk: nn.Module,
    dataset_node: Mapping[str, Any],
    eval_transform: Mapping[str, Any],
    normalize: str,
    labels: Any,
    weights: str | None = None,
) -> str:
    """The cache key of one split's features: sha256 of what determines them (see the module doc).

    weights: `weights_digest(trunk)` when already computed.
    """
    identity = {
        "extractor": EXTRACTOR_VERSION,
        "trunk": f"{type(trunk).__module__}.{type(trunk).__qualname__}",
        "weights": weights or weights_digest(trunk),
        "dataset": dataset_node,
        "eval_transform": eval_transform,
        "normalize": normalize,
        "items": len(labels),
        "labels": _labels_digest(labels),
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@torch.no_grad()
def extract_features(
    trunk: nn.Module,
    dataset: Dataset,
    batch_size: int = 256,
    desc: str = "features",
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The trunk's pooled features [N, F] (float32, CPU) and labels [N] of every item, in order,
    with the trunk in eval mode (a progress bar on a terminal)."""
    from dml.models.embed import embed  # the one embedding loop

    device = next(iter(trunk.parameters()), torch.empty(0)).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    # iterating a DataLoader draws a seed from torch's RNG: a run that extracts must go on with the
    # same random numbers as one that reads the cache
    with torch.random.fork_rng(devices=[]):
        return embed(trunk, loader, device=device, desc=desc)


def _read(path: Path, key: str, n_items: int, labels: np.ndarray) -> torch.Tensor | None:
    """The features of a cache file, or None (logged) when it is missing, unreadable or not for `key`."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, foreign or corrupt: rebuilt by the caller
        log.warning("feature cache %s cannot be read (%s): rebuilding it", path, type(err).__name__)
        return None
    features = data.get("features") if isinstance(data, dict) else None
    problem = None
    if not isinstance(data, dict) or data.get("key") != key:
        problem = "it was written for another key"
    elif not torch.is_tensor(features) or features.dim() != 2 or len(features) != n_items:
        problem = f"it does not hold {n_items} feature rows"
    elif not torch.equal(torch.as_tensor(data.get("labels")), torch.as_tensor(labels)):
        problem = "its labels differ from the dataset's"
    elif not torch.isfinite(features).all():
        problem = "it holds NaN/inf"
    if problem:
        log.warning("feature cache %s is not usable (%s): rebuilding it", path, problem)
        return None
    return features.float()


def cached_features(
    trunk: nn.Module,
    dataset: Dataset,
    key: str,
    folder: str | Path,
    batch_size: int = 256,
    name: str = "features",
    num_workers: int = 0,
) -> torch.Tensor:
    """The features of `dataset` from `<folder>/<key>.pt`, extracted with `trunk` and stored
    atomically first when that file is missing or not usable."""
    labels = np.asarray(dataset.labels, dtype=np.int64)
    path = Path(folder) / f"{key}.pt"
    features = _read(path, key, len(labels), labels)
    if features is not None:
        return features
    start = time.time()
    features, seen = extract_features(
        trunk, dataset, batch_size, desc=f"features of {name}", num_workers=num_workers
    )
    if not torch.equal(seen, torch.as_tensor(labels)):
        raise RuntimeError(
            f"{type(dataset).__name__} returned other labels than its .labels while extracting features"
        )
    buffer = io.BytesIO()
    torch.save({"key": key, "features": features, "labels": seen}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    log.info(
        "features of %s: %d x %d extracted in %.1fs, cached in %s",
        name,
        *features.shape,
        time.time() - start,
        path,
    )
    return features


class FeatureDataModule(DMLDataModule):
    """DMLDataModule whose loaders yield the frozen trunk's cached pooled features, not images.

    The splits are built as usual (folds, skip_bad_images and the split summary unchanged), every
    one with the EVAL transform; `train_set` and `eval_sets` stay the image datasets (plots show
    their images). Each loader holds the features of its dataset, looked up by key when the loader
    is made, so a trunk whose weights changed (a checkpoint loaded) gets its own features.
    """

    augments_batches = False  # the train features come from un-augmented images

    def __init__(
        self,
        dataset: DictConfig | Mapping[str, Any],
        trunk: nn.Module,
        cache_dir: str | Path,
        normalize: str = "none",
        eval_batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(dataset, normalize=normalize, eval_batch_size=eval_batch_size, seed=seed)
        self.trunk = trunk
        self.cache_dir = Path(cache_dir) / "features"
        self._nodes: dict[int, tuple[Dataset, dict[str, Any], str]] = {}
        self._memo: dict[str, torch.Tensor] = {}
        # the trunk's forward is worth every thread, also when the run trains the head on one
        self.extract_threads = torch.get_num_threads()

    def _build(self, node: DictConfig, train: bool) -> Dataset:
        ds = super()._build(node, train=False)  # cached features come from un-augmented images
        spec = OmegaConf.to_container(node, resolve=True)
        split = str(spec.get("split", "")) if isinstance(spec, dict) else ""
        self._nodes[id(ds)] = (ds, spec, split)
        return ds

    def features(self, dataset: Dataset) -> torch.Tensor:
        """The trunk's features of every item of `dataset` (a built split or a ClassSubset of one)."""
        if isinstance(dataset, ClassSubset):
            return self.features(dataset.dataset)[torch.as_tensor(dataset.indices)]
        if id(dataset) not in self._nodes:
            raise TypeError(
                f"{type(dataset).__name__} was not built by this FeatureDataModule: no cached features"
            )
        _, node, split = self._nodes[id(dataset)]
        eval_spec = OmegaConf.to_container(self.cfg.transform.eval, resolve=True)
        key = feature_key(self.trunk, node, eval_spec, self.normalize, dataset.labels)
        if key not in self._memo:
            name = f"{self.cfg.get('name')} {split}".strip()
            workers = int(self.cfg.get("num_workers", 0))  # decoding images: the data's workers
            with torch_threads(self.extract_threads):
                self._memo[key] = cached_features(
                    self.trunk, dataset, key, self.cache_dir, self.eval_batch_size, name, workers
                )
        return self._memo[key]

    def _loader(self, dataset: Dataset, **kwargs: Any) -> DataLoader:
        # in-memory tensors: worker processes would cost more than they save
        return DataLoader(
            FeatureSet(self.features(dataset), dataset.labels),
            pin_memory=torch.cuda.is_available(),
            **kwargs,
        )

    def image_dataloaders(self) -> dict[str, DataLoader]:
        """One ordered loader of images (eval transform) per eval split: the raw-pixel baseline."""
        if not self.eval_sets:
            self.setup("validate")
        return {
            name: DMLDataModule._loader(self, ds, batch_size=self.eval_batch_size)
            for name, ds in self.eval_sets.items()
        }
