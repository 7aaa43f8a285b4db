"""Label levels: one item, several labels (a fine class and the coarse class it belongs to).

A dataset that knows more than one labelling of its items exposes them as `label_levels`, a
mapping from a level name to a 1-D int array aligned with `labels`: `{"fine": the emoji,
"coarse": its Unicode subgroup}` for `Emoji`, `{"fine": the font, "coarse": the character}` for
`Fonts`, `{"fine": the mode, "coarse": the class}` for `Synthetic`. Two dataset options use them:

- `dataset.label=coarse`: the dataset's `labels` (what batches, sampler, loss and the plain
  metrics see) are that level's: training on coarse labels, as Levi et al. 2020 do to show class
  collapse. The dataset applies it when it builds its splits.
- `dataset.eval_levels=[fine,coarse]`: the eval split is also scored with each level's labels,
  from the same embedding, by the run's Evaluator; the metrics come as `<level>/<name>`
  (`fine/map@r`, `coarse/map@r`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

LABEL_LEVELS = ("fine", "coarse")


def check_label_level(label: str) -> str:
    """`label` when it is fine or coarse, else a ValueError naming dataset.label."""
    if label not in LABEL_LEVELS:
        raise ValueError(
            f"dataset.label={label!r} is not a label level; use dataset.label=fine (the classes) or "
            "dataset.label=coarse (their coarse category)"
        )
    return label


def level_names(dataset: Any) -> list[str]:
    """The label levels a dataset offers (empty when it has only its `labels`)."""
    return list((getattr(dataset, "label_levels", None) or {}).keys())


def level_labels(
    dataset: Any, level: str, split: str = "test", option: str = "dataset.eval_levels"
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
        split: {level: level_labels(ds, level, split) for level in levels}
        for split, ds in eval_sets.items()
        if split != "val"
    }
