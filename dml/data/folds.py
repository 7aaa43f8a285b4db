"""Class-disjoint training folds (Musgrave et al. 2020): cut the train split's classes into partitions.

The partitions follow powerful-benchmarker's ClassDisjointSplitManager: the sorted class list is cut
unshuffled into `folds` contiguous chunks, the first `n % folds` chunks one class larger (scikit-learn's
KFold without shuffling). Fold k trains on the other chunks and validates on chunk k. The paper's own
MLRCSplitManager walks the same sorted list with a wrapped window whose lengths come from the whole
dataset's class count: on CUB-200 (100 train classes) its 4 validation chunks are these 4 chunks, only
numbered differently; where the count does not divide evenly its window drifts (on Cars196's 98 train
classes two classes are in no validation chunk), which this exact partition avoids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch.utils.data import Dataset


class ClassSubset(Dataset):
    """The items of `dataset` whose label is one of `classes`, in the dataset's order; `.labels` like the others."""

    def __init__(self, dataset: Dataset, classes: Any) -> None:
        self.dataset = dataset
        self.classes = np.asarray(classes, dtype=np.int64)
        all_labels = np.asarray(dataset.labels, dtype=np.int64)
        self.indices = np.flatnonzero(np.isin(all_labels, self.classes))
        self.labels = all_labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def __repr__(self) -> str:
        return f"ClassSubset({self.dataset!r}, classes={len(self.classes)}, items={len(self)})"


def fold_options(dataset_cfg: Mapping[str, Any]) -> tuple[int, int] | None:
    """(folds, fold) from the dataset config's `folds` and `fold` keys, None when folds are off.

    Raises ValueError naming the key for a fold without folds, folds < 2 or a fold outside 0..folds-1.
    """
    folds, fold = dataset_cfg.get("folds"), dataset_cfg.get("fold")
    if folds is None:
        if fold is not None:
            raise ValueError(
                f"dataset.fold={fold!r} is set but dataset.folds is not; set dataset.folds=4 (the number of "
                "class-disjoint partitions of the train split) or drop dataset.fold"
            )
        return None
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(
            f"dataset.folds={folds!r} is not valid: expected an integer >= 2 (the number of class-disjoint "
            "partitions of the train split), or null to train on the whole train split"
        )
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise ValueError(
            f"dataset.fold={fold!r} is not valid with dataset.folds={folds}: expected an integer in 0..{folds - 1} "
            f"(run every fold with dataset.fold={','.join(map(str, range(folds)))} -m)"
        )
    return folds, fold


def class_partitions(labels: Any, folds: int) -> list[np.ndarray]:
    """The sorted distinct labels cut into `folds` contiguous chunks, sizes differing by at most 1 (larger first).

    Every chunk needs two classes at least: retrieval on a validation fold of one class means nothing.
    """
    classes = np.unique(np.asarray(labels))
    if 2 * folds > len(classes):
        raise ValueError(
            f"dataset.folds={folds} but the train split has only {len(classes)} classes; every fold's validation "
            f"partition needs at least 2 classes, so lower dataset.folds to at most {max(len(classes) // 2, 1)} "
            "(or dataset.folds=null: no folds)"
        )
    return np.array_split(classes, folds)


def fold_classes(labels: Any, folds: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(training classes, validation classes) of fold `fold`: every partition but `fold`, and partition `fold`."""
    parts = class_partitions(labels, folds)
    return np.concatenate([p for k, p in enumerate(parts) if k != fold]), parts[fold]
