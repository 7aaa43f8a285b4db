"""Own data as folders: ``root/<class>/<image>`` (or ``root/<split>/<class>/<image>``)."""

from __future__ import annotations

import os
from pathlib import Path

from dml.data.description import DatasetInfo
from dml.data.image_list import DatasetLayoutError, ImageListDataset

# your own images: no official counts, the splits come from the folder
DATASET = DatasetInfo(
    name="folder",
    target="dml.data.folder.FolderDataset",
    splits=("train", "test"),
    note=(
        "this is your own data, nothing to download: put it under ROOT (see the README's "
        "'Own data'), then check it with `dml-data check folder --root ROOT --verify-images`"
    ),
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def class_disjoint_split(classes: list, split: str, train_fraction: float) -> set:
    """The first ``train_fraction`` of the sorted classes for train, the rest for test."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    ordered = sorted(set(classes))
    cut = min(max(1, round(len(ordered) * train_fraction)), len(ordered) - 1)
    if len(ordered) < 2:
        raise ValueError(f"a class-disjoint split needs at least 2 classes, got {len(ordered)}")
    return set(ordered[:cut]) if split == "train" else set(ordered[cut:])


class FolderDataset(ImageListDataset):
    """One sub-folder per class. With ``root/train`` and ``root/test`` (or any ``root/<split>``)
    present, ``split`` picks that folder; otherwise ``split`` train | test cuts the sorted
    classes at ``train_fraction`` (class-disjoint, the DML protocol), and ``all`` keeps all."""

    name = DATASET.name

    @staticmethod
    def available_splits(root: str | os.PathLike, **options) -> tuple[str, ...]:
        """The splits under ``root``: its train/test sub-folders, or the class-disjoint cut."""
        root = Path(root).expanduser()
        named = tuple(s for s in ("train", "test") if (root / s).is_dir())
        return named if named else ("train", "test")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform=None,
        train_fraction: float = 0.5,
        **kwargs,
    ) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetLayoutError(
                f"folder: {root} is not a folder; expected ROOT/<class>/<image> or "
                "ROOT/<split>/<class>/<image> (set dataset.root)"
            )
        if (root / split).is_dir():
            base = root / split
        elif split in ("train", "test", "all"):
            base = root
        else:
            raise DatasetLayoutError(f"folder: no sub-folder {root / split} for split {split!r}")
        paths, classes = [], []
        for class_dir in sorted(
            p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            for image in sorted(class_dir.rglob("*")):
                if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                    paths.append(image.relative_to(base).as_posix())
                    classes.append(class_dir.name)
        if not paths:
            raise DatasetLayoutError(
                f"folder: no images ({', '.join(IMAGE_SUFFIXES)}) in class sub-folders of {base}; "
                "expected ROOT/<class>/<image>"
            )
        if base == root and split in ("train", "test"):
            keep = class_disjoint_split(classes, split, train_fraction)
            paths, classes = zip(
                *[(p, c) for p, c in zip(paths, classes, strict=True) if c in keep], strict=True
            )
        super().__init__(base, list(paths), list(classes), split, transform=transform, **kwargs)
