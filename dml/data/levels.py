"""Label levels: one item, several labels (a fine class and the coarse class it belongs to).

A dataset that knows more than one labelling of its items exposes them as `label_levels`, a
mapping from a level name to a 1-D int array aligned with `labels` (for example `{"fine": mode
of a class, "coarse": the class}` for `Synthetic`, or an emoji and its Unicode subgroup). Two
dataset options use them:

- `dataset.label_level=coarse`: the train split's items carry that level's labels (batches,
  sampler and loss see them): training on coarse labels, as Levi et al. 2020 do to show class
  collapse.
- `dataset.eval_levels=[fine,coarse]`: the eval split is also scored with each level's labels,
  from the same embedding; the metrics come as `<level>/<name>` (`fine/map@r`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset


def level_names(dataset: Any) -> list[str]:
    """The label levels a dataset offers (empty when it has only its `labels`)."""
    return list((getattr(dataset, "label_levels", None) or {}).keys())


def level_labels(
    dataset: Any, level: str, split: str = "train", option: str = "dataset.label_level"
) -> np.ndarray:
    """The labels of `level` for every item of `dataset`; a ValueError names the option and the levels there are."""
    levels: Mapping[str, Any] = getattr(dataset, "label_levels", None) or {}
    if level not in levels:
        offered = (
            f"its levels are {sorted(levels)}"
            if levels
            else "it has no label levels besides its labels"
        )
        raise ValueError(
            f"{option} asks for label level {level!r}, but the {split} split ({type(dataset).__name__}) does not "
            f"have it: {offered}; pick one of those or drop {option}"
        )
    labels = np.asarray(levels[level], dtype=np.int64)
    if labels.shape != (len(dataset),):
        raise ValueError(
            f"{type(dataset).__name__}.label_levels[{level!r}] holds {labels.shape} labels for {len(dataset)} items"
        )
    return labels


class Relabeled(Dataset):
    """`dataset` with the labels of one of its label levels: item i is (image i, level label i)."""

    def __init__(self, dataset: Dataset, level: str, split: str = "train") -> None:
        self.dataset = dataset
        self.level = level
        self.labels = level_labels(dataset, level, split)
        # the other levels stay reachable (a fold or a second relabelling of this one)
        self.label_levels = getattr(dataset, "label_levels", None)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        item, _ = self.dataset[index]
        return item, int(self.labels[index])

    def __repr__(self) -> str:
        return f"Relabeled({self.dataset!r}, level={self.level!r})"


def eval_level_labels(
    eval_sets: Mapping[str, Dataset], levels: Sequence[str]
) -> dict[str, dict[str, np.ndarray]] | None:
    """{split: {level: labels}} of the eval splits for `dataset.eval_levels` (None when it is empty).

    A training fold's `val` split is scored at its own labels only.
    """
    levels = list(levels or [])
    if not levels:
        return None
    return {
        split: {
            level: level_labels(ds, level, split, option="dataset.eval_levels") for level in levels
        }
        for split, ds in eval_sets.items()
        if split != "val"
    }
