"""LightningDataModule: builds the dataset config's splits, transforms and class-balanced batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader, Dataset

from dml.data.batch_sampler import ClassBalancedBatchSampler
from dml.data.batch_transforms import (
    ArrayBatches,
    BatchTransform,
    already_batched,
    batch_generator,
    in_memory_images,
    supports,
)
from dml.data.folds import ClassSubset, fold_classes, fold_options
from dml.data.levels import eval_level_labels
from dml.data.transforms import build_transform
from dml.world import EvalShardSampler, world


@rank_zero_only
def _print_rank_zero(text: str) -> None:
    print(text)


class DMLDataModule(pl.LightningDataModule):
    """Train split in P classes x M images batches; eval split(s) in order for embedding.

    `dataset` is the composed `dataset` config node; `normalize` is the backbone's input
    normalisation (imagenet | bgr255 | none). Evaluation is self-retrieval on `test`, or
    `query` against `gallery` when the config names both. With `dataset.folds` and `dataset.fold`
    (dml.data.folds) training uses the train split minus one class-disjoint partition, and that
    partition, with the eval transform, is an extra eval split `val`. With `dataset.batch_transforms`
    an in-memory train split is augmented a whole batch at a time on the device
    (dml.data.batch_transforms), not image by image.
    """

    #: whether `dataset.batch_transforms` may augment the train batches (not for cached features)
    augments_batches: bool = True

    def __init__(
        self,
        dataset: DictConfig | Mapping[str, Any],
        normalize: str = "none",
        eval_batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.cfg = dataset if isinstance(dataset, DictConfig) else OmegaConf.create(dict(dataset))
        self.normalize = normalize
        self.eval_batch_size = int(eval_batch_size)
        self.seed = int(seed)
        self.train_set: Dataset | None = None
        self.eval_sets: dict[str, Dataset] = {}
        #: eval split -> images left out of it with skip_bad_images (missing or unreadable)
        self.dropped_images: dict[str, int] = {}
        self._summarised = (
            False  # the split summary is printed once, at the first setup with training
        )
        self.batch_sampler: ClassBalancedBatchSampler | None = None
        self._batch_sampler_state: dict[str, Any] | None = (
            None  # from a checkpoint, used by train_dataloader
        )
        #: the train batches' augmentation when it runs on whole batches (None: per image)
        self.batch_transform: BatchTransform | None = None

    @property
    def query_gallery(self) -> bool:
        """True when evaluation is query-vs-gallery (In-Shop), False for self-retrieval."""
        return self.cfg.get("query") is not None and self.cfg.get("gallery") is not None

    def transform(self, train: bool):
        """The config's train or eval transform, with the backbone's input normalisation."""
        spec = self.cfg.transform.train if train else self.cfg.transform.eval
        return build_transform(OmegaConf.to_container(spec, resolve=True), normalize=self.normalize)

    def _build(self, node: DictConfig, train: bool) -> Dataset:
        return hydra.utils.instantiate(node, transform=self.transform(train))

    def setup(self, stage: str | None = None) -> None:
        folds = fold_options(
            self.cfg
        )  # (folds, fold), None when off; a bad combination names the key
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self._build(self.cfg.train, train=True)
            if folds is not None:
                self.train_set = ClassSubset(
                    self.train_set, fold_classes(self.train_set.labels, *folds)[0]
                )
            spec = OmegaConf.to_container(self.cfg.transform.train, resolve=True)
            if (
                self.augments_batches
                and self.cfg.get("batch_transforms")
                and supports(spec)
                and in_memory_images(self.train_set)
            ):
                self.batch_transform = BatchTransform(spec, normalize=self.normalize)
        if not self.eval_sets:
            if self.query_gallery:
                self.eval_sets = {
                    "query": self._build(self.cfg.query, train=False),
                    "gallery": self._build(self.cfg.gallery, train=False),
                }
            elif self.cfg.get("test") is not None:
                self.eval_sets = {"test": self._build(self.cfg.test, train=False)}
            else:
                raise ValueError(
                    f"dataset={self.cfg.get('name')}: the config names no eval split; set dataset.test, "
                    "or dataset.query and dataset.gallery"
                )
            for name, ds in self.eval_sets.items():
                self._drop_unreadable(name, ds)
            if (
                folds is not None
            ):  # the held-out partition of the train split, built with the eval transform
                source = self._build(self.cfg.train, train=False)
                held_out = fold_classes(source.labels, *folds)[1]  # the classes training leaves out
                self._drop_unreadable("val", source, classes=held_out)
                self.eval_sets["val"] = ClassSubset(source, held_out)
            for name, ds in self.eval_sets.items():
                if len(ds) == 0:
                    raise ValueError(
                        f"dataset={self.cfg.get('name')}: the {name} split is empty (0 images); point dataset.{name} "
                        "at a split with images (check dataset.root / paths.data_dir and the split's list files)"
                    )
        if not self._summarised and self.train_set is not None:
            self._summarised = True
            _print_rank_zero("\n".join(self.split_summary()))

    def split_summary(self) -> list[str]:
        """One line per split: its images and classes (and images left out by skip_bad_images)."""
        name = self.cfg.get("name")
        sets = (
            {"train": self.train_set, **self.eval_sets}
            if self.train_set is not None
            else self.eval_sets
        )
        lines = []
        for split, ds in sets.items():
            line = (
                f"dataset {name} {split}: {len(ds):,} images, {len(np.unique(ds.labels)):,} classes"
            )
            if self.dropped_images.get(split):
                line += f" ({self.dropped_images[split]:,} unreadable or missing left out)"
            lines.append(line)
        return lines

    def _drop_unreadable(self, name: str, ds: Dataset, classes: Any = None) -> None:
        """With skip_bad_images, leave the eval split's missing and unreadable images out (of
        the given labels only, when `classes` is set) and count them in dropped_images."""
        if not getattr(ds, "skip_bad_images", False):
            return
        ds.drop_unreadable(int(self.cfg.get("num_workers", 0)), classes=classes)
        wanted = ds.classes if classes is None else ds.classes[np.asarray(classes)]
        self.dropped_images[name] = sum(
            1 for _, class_id in ds.dropped_images if class_id in set(wanted.tolist())
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup('fit') first"
        if self.batch_sampler is None:
            size, rank = world()
            self.batch_sampler = ClassBalancedBatchSampler(
                self.train_set.labels,
                classes_per_batch=int(self.cfg.classes_per_batch),
                m_per_class=int(self.cfg.m_per_class),
                seed=self.seed,
                num_replicas=size,
                rank=rank,
            )
        state, self._batch_sampler_state = self._batch_sampler_state, None
        if state is not None:  # resumed: continue at the checkpoint's epoch and batch
            self.batch_sampler.load_state_dict(state)
        if self.batch_transform is not None:  # uint8 batches, augmented in on_after_batch_transfer
            images, indices = in_memory_images(self.train_set)
            batches = ArrayBatches(images, indices, self.train_set.labels)
            return self._loader(
                batches, batch_sampler=self.batch_sampler, collate_fn=already_batched
            )
        return self._loader(self.train_set, batch_sampler=self.batch_sampler)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment a training batch of uint8 images (batch_transforms) on its device, with the
        batch's own generator: seed, rank, epoch and the batch's index in the epoch (Lightning's
        batch_idx of the coming training_step, restored on resume), so resumed runs draw alike."""
        trainer = getattr(self, "trainer", None)
        if self.batch_transform is None or trainer is None or not trainer.training:
            return batch
        x, y = batch
        if x.dtype != torch.uint8:
            return batch
        # the training loop moves a batch to its device before it counts it as ready
        index = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
        generator = batch_generator(self.seed, world()[1], trainer.current_epoch, index)
        return self.batch_transform(x, generator), y

    def set_epoch(self, epoch: int) -> None:
        """Start training epoch `epoch`'s batch plan: the one place the batch sampler's epoch is set
        (DMLModule calls it as each epoch starts, also when limit_train_batches ended the last one
        early; a resumed run's loaded position is kept, as its epoch is the same)."""
        if self.batch_sampler is not None:
            self.batch_sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The batch sampler's epoch and position in batches trained on (goes into checkpoints)."""
        trainer = getattr(self, "trainer", None)
        if self.batch_sampler is None or trainer is None or trainer.state.fn != "fit":
            return {}
        return {"batch_sampler": batch_sampler_state(trainer, self.batch_sampler)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._batch_sampler_state = state_dict.get("batch_sampler")

    def eval_dataloaders(self) -> dict[str, DataLoader]:
        """One ordered loader per eval split (`test`, or `query` and `gallery`).

        Under DDP each rank gets its contiguous share (no padding, no repeats); the module
        gathers the shares in rank order.
        """
        if not self.eval_sets:
            self.setup("validate")
        size, rank = world()
        return {
            name: self._loader(
                ds,
                batch_size=self.eval_batch_size,
                sampler=EvalShardSampler(len(ds), size, rank) if size > 1 else None,
            )
            for name, ds in self.eval_sets.items()
        }

    def verification_pairs(self) -> tuple[Any, Any, Any] | None:
        """(index pairs, same, fold) of the test split when the config asks for verification (LFW)."""
        test = self.eval_sets.get("test")
        if not self.cfg.get("verification") or test is None:
            return None
        if not all(hasattr(test, a) for a in ("pairs", "same", "fold")):
            raise ValueError(
                f"dataset={self.cfg.get('name')}: verification=true needs a test split with .pairs, .same "
                f"and .fold (such as dml.data.LFW split=pairs); {type(test).__name__} has none"
            )
        return test.pairs, test.same, test.fold

    def label_levels(self) -> dict[str, dict[str, np.ndarray]] | None:
        """{split: {level: labels}} of the eval splits for `dataset.eval_levels` (dml.data.levels),
        None when it lists none."""
        if not self.eval_sets:
            self.setup("validate")
        return eval_level_labels(self.eval_sets, self.cfg.get("eval_levels") or [])

    def val_dataloader(self) -> list[DataLoader]:
        return list(self.eval_dataloaders().values())

    def _loader(self, dataset: Dataset, **kwargs: Any) -> DataLoader:
        workers = int(self.cfg.get("num_workers", 0))
        return DataLoader(
            dataset,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            **kwargs,
        )


def batch_sampler_state(trainer: Any, sampler: Any) -> dict[str, Any]:
    """The batch sampler's state counted in batches the trainer has finished, not batches prefetched.

    The loader runs ahead of training (Lightning prefetches a batch, workers more), so the sampler's
    own position overshoots; the trainer's progress says how many batches were trained on. An epoch
    that is complete resumes at the start of the next one.
    """
    epoch = int(trainer.current_epoch)
    epochs = trainer.fit_loop.epoch_progress.current
    done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
    if epochs.started <= epochs.completed:  # between epochs (e.g. at the end of training)
        done = 0
    elif done >= trainer.num_training_batches:
        # the epoch's batches are done, its evaluation may not be
        epoch, done = epoch + 1, 0
    state = dict(sampler.state_dict())
    state.update(epoch=epoch, position=done)
    return state
