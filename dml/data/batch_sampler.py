"""Class-balanced batch sampler: every batch holds P classes x M images of each.

Metric-learning losses need several images of each class in a batch. An epoch cuts each
class's shuffled images into chunks of M (a class with fewer than M images is topped up by
drawing with replacement, a last partial chunk by drawing other images of its class), then
deals the chunks into batches of P distinct classes. Every image is visited at least once per
epoch, the number of batches depends only on the class sizes (not on the random draw), and
with several devices each rank gets its own disjoint share of the batches, the same number on
every rank. The plan is a pure function of (seed, epoch), so runs and resumed runs reproduce.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from dml.world import world


class ClassBalancedBatchSampler:
    """Yields lists of dataset indices: ``classes_per_batch`` classes x ``m_per_class`` images.

    Pass it to ``DataLoader(dataset, batch_sampler=...)``. Call ``set_epoch(epoch)`` before each
    epoch (Lightning does) for a fresh draw; after a full pass the epoch also advances by itself.
    ``state_dict()`` / ``load_state_dict()`` carry the epoch and the number of batches already
    handed out in it, so a resumed run continues with the batch where it stopped. A DataLoader
    with workers draws a few batches ahead of training (prefetch), so a checkpoint should store
    the number of batches the loop has trained on: ``{"epoch": e, "position": batches_done}``.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        classes_per_batch: int,
        m_per_class: int,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError(
                f"labels must be a non-empty 1-D sequence of class labels, got shape {labels.shape}"
            )
        if int(m_per_class) < 1:
            raise ValueError(f"m_per_class must be >= 1, got {m_per_class}")
        if int(classes_per_batch) < 1:
            raise ValueError(f"classes_per_batch must be >= 1, got {classes_per_batch}")
        classes, inverse = np.unique(labels, return_inverse=True)
        if len(classes) < classes_per_batch:
            raise ValueError(
                f"classes_per_batch={classes_per_batch} but the dataset has only {len(classes)} "
                f"classes; lower dataset.classes_per_batch to at most {len(classes)}"
            )
        self.classes_per_batch = int(classes_per_batch)
        self.m_per_class = int(m_per_class)
        self.batch_size = self.classes_per_batch * self.m_per_class
        self.seed = int(seed)
        self._num_replicas, self._rank = num_replicas, rank
        if num_replicas is not None or rank is not None:
            world(num_replicas if num_replicas is not None else 1, rank or 0)
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse, minlength=len(classes))
        # indices of each class, in dataset order
        self._class_indices = np.split(order, np.cumsum(counts)[:-1])
        self._chunks_per_class = np.maximum(1, -(-counts // self.m_per_class))
        total_chunks = int(self._chunks_per_class.sum())
        # enough batches for every chunk, and for the largest class (one chunk per batch)
        self._num_global_batches = max(
            -(-total_chunks // self.classes_per_batch), int(self._chunks_per_class.max())
        )
        self.epoch = 0
        self._position = 0  # batches handed out in the current epoch on this rank
        self._resume_from = 0

    # -- distributed ---------------------------------------------------------------------
    @property
    def num_replicas(self) -> int:
        return world(self._num_replicas, self._rank)[0]

    @property
    def rank(self) -> int:
        return world(self._num_replicas, self._rank)[1]

    def __len__(self) -> int:
        """Batches per epoch on this rank (equal on every rank)."""
        return -(-self._num_global_batches // self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan the next iteration uses."""
        if int(epoch) != self.epoch:
            self._resume_from = 0
        self.epoch = int(epoch)

    # -- resume --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Epoch, batches already handed out in it on this rank, and the seed."""
        return {"epoch": self.epoch, "position": self._position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at ``state['position']`` of ``state['epoch']`` on the next iteration."""
        if "seed" in state and int(state["seed"]) != self.seed:
            raise ValueError(
                f"sampler state was saved with seed={state['seed']} but this sampler has "
                f"seed={self.seed}; resume with the same seed"
            )
        position = int(state.get("position", 0))
        if not 0 <= position <= len(self):
            raise ValueError(f"sampler position {position} is outside [0, {len(self)}]")
        self.epoch = int(state["epoch"])
        self._position = position
        self._resume_from = position

    # -- plan ----------------------------------------------------------------------------
    def _random_chunk(self, rng: np.random.Generator, c: int) -> np.ndarray:
        idx = self._class_indices[c]
        replace = len(idx) < self.m_per_class
        return rng.choice(idx, size=self.m_per_class, replace=replace)

    def _class_chunks(self, rng: np.random.Generator, c: int) -> list[np.ndarray]:
        """The class's images, shuffled, cut into chunks of M (the last one topped up)."""
        idx = rng.permutation(self._class_indices[c])
        m = self.m_per_class
        if len(idx) < m:
            idx = np.concatenate([idx, rng.choice(idx, size=m - len(idx), replace=True)])
        elif len(idx) % m:
            rest = len(idx) % m
            # top the last chunk up with other images of the class, none repeated within it
            extra = rng.choice(idx[: len(idx) - rest], size=m - rest, replace=False)
            idx = np.concatenate([idx, extra])
        return list(idx.reshape(-1, m))

    def _filler(self, rng: np.random.Generator, taken: list[int], n: int) -> list[np.ndarray]:
        """``n`` random chunks from classes not already in the batch."""
        free = np.setdiff1d(np.arange(len(self._class_indices)), taken)
        return [self._random_chunk(rng, int(c)) for c in rng.choice(free, size=n, replace=False)]

    def plan(self, epoch: int | None = None) -> list[list[int]]:
        """All batches of an epoch, across ranks, before they are dealt out (deterministic)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        num_classes = len(self._class_indices)
        chunks = [self._class_chunks(rng, c) for c in range(num_classes)]
        remaining = self._chunks_per_class.astype(np.int64).copy()
        p = self.classes_per_batch
        batches: list[list[int]] = []
        for left in range(self._num_global_batches, 0, -1):
            # classes with a chunk in each remaining batch must be in this one (feasibility);
            # the others are drawn without replacement, weighted by their remaining chunks
            # (Gumbel top-k), so big classes spread over the whole epoch
            keys = np.log(np.maximum(remaining, 1)) - np.log(-np.log(rng.random(num_classes)))
            keys[remaining == 0] = -np.inf
            keys[remaining >= left] = np.inf
            n_take = min(p, int((remaining > 0).sum()))
            chosen = np.argpartition(-keys, n_take - 1)[:n_take] if n_take else np.array([], int)
            parts = []
            for c in chosen:
                remaining[c] -= 1
                parts.append(chunks[c][remaining[c]])
            if n_take < p:
                parts += self._filler(rng, chosen.tolist(), p - n_take)
            batches.append(np.concatenate(parts).tolist())
        assert not remaining.any(), "every chunk is placed"
        order = rng.permutation(len(batches))
        batches = [batches[i] for i in order]
        # pad to a multiple of the world size with fresh random batches
        world = self.num_replicas
        while len(batches) % world:
            classes = rng.choice(num_classes, size=p, replace=False)
            batches.append(
                np.concatenate([self._random_chunk(rng, int(c)) for c in classes]).tolist()
            )
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        world, rank = self.num_replicas, self.rank
        mine = self.plan()[rank::world]
        start, self._resume_from = self._resume_from, 0
        self._position = start
        for batch in mine[start:]:
            self._position += 1
            yield batch
        # a full pass: the next iteration draws the next epoch unless set_epoch says otherwise
        self.epoch += 1
        self._position = 0
