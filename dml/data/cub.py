"""Caltech-UCSD Birds 200-2011 with the DML split: classes 1-100 train, 101-200 test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dml.data.description import DatasetInfo
from dml.data.download import Archive
from dml.data.image_list import ImageListDataset, check_split, find_root, require_file

DATASET = DatasetInfo(
    name="cub200",
    target="dml.data.cub.CUB200",
    splits=("train", "test"),
    archives=(
        Archive(
            "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
            "97eceeb196236b17998738112f37df78",
        ),
    ),
    counts={"train": (5864, 100), "test": (5924, 100)},
)

_HINT = "Get it with `dml-data download cub200 --root {root}` (CUB_200_2011.tgz, 1.1 GB)."


def _read_table(path: Path, columns: int) -> dict[int, list[str]]:
    """``image_id value...`` rows keyed by image id (the CUB files share this form)."""
    rows: dict[int, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != columns:
                raise ValueError(
                    f"{path}:{number}: expected {columns} fields, got {line.strip()!r}"
                )
            rows[int(parts[0])] = parts[1:]
    return rows


class CUB200(ImageListDataset):
    """CUB200-2011: ``root`` holds ``CUB_200_2011/`` (images.txt, image_class_labels.txt,
    classes.txt, bounding_boxes.txt, images/); the files are joined by image id."""

    name = DATASET.name
    expected_counts = DATASET.counts
    splits = {"train": (1, 100), "test": (101, 200)}

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform=None,
        crop_to_bbox: bool = False,
        **kwargs,
    ) -> None:
        check_split("CUB200", split, self.splits)
        base = find_root(root, "images.txt", "CUB_200_2011")
        hint = _HINT.format(root=root)
        images = _read_table(require_file(base / "images.txt", self.name, hint), 2)
        labels = _read_table(require_file(base / "image_class_labels.txt", self.name, hint), 2)
        names = _read_table(require_file(base / "classes.txt", self.name, hint), 2)
        boxes = (
            _read_table(require_file(base / "bounding_boxes.txt", self.name, hint), 5)
            if crop_to_bbox
            else None
        )
        missing = sorted(set(images) - set(labels))
        if missing:
            raise ValueError(
                f"{base / 'image_class_labels.txt'} has no class for image ids {missing[:5]}"
            )
        lo, hi = self.splits[split]
        ids = [i for i in sorted(images) if lo <= int(labels[i][0]) <= hi]
        self.image_ids = np.asarray(ids, dtype=np.int64)
        self.class_names = {int(k): v[0] for k, v in names.items()}
        box_array = None
        if boxes is not None:
            # x, y, width, height -> x1, y1, x2, y2
            xywh = np.asarray([[float(v) for v in boxes[i]] for i in ids]).reshape(-1, 4)
            box_array = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        super().__init__(
            base / "images",
            [images[i][0] for i in ids],
            [int(labels[i][0]) for i in ids],
            split,
            transform=transform,
            boxes=box_array,
            **kwargs,
        )
