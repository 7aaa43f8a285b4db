"""Stanford Cars 196 with the DML split: classes 1-98 train, 99-196 test (its test flag ignored)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dml.data.description import DatasetInfo
from dml.data.image_list import ImageListDataset, check_split, require_file

DATASET = DatasetInfo(
    name="cars196",
    target="dml.data.cars.Cars196",
    splits=("train", "test"),
    note=(
        "Stanford Cars has no working public download (the original ai.stanford.edu links are "
        "dead). Get car_ims.tgz and cars_annos.mat from a mirror you trust (e.g. the Kaggle "
        "'stanford-cars-dataset' copies) and arrange them as ROOT/cars_annos.mat and "
        "ROOT/car_ims/000001.jpg ... ROOT/car_ims/016185.jpg, then run `dml-data check cars196 --root ROOT`."
    ),
    counts={"train": (8054, 98), "test": (8131, 98)},
)


def _scalar(value):
    """A MATLAB cell/struct field as a Python scalar (loadmat nests them in arrays)."""
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected a scalar field in cars_annos.mat, got shape {value.shape}")
        value = value.reshape(-1)[0]
    return value


class Cars196(ImageListDataset):
    """Cars196: ``root`` holds ``cars_annos.mat`` (relative_im_path, bbox_x1..bbox_y2, class
    1-196) and ``car_ims/``."""

    name = DATASET.name
    expected_counts = DATASET.counts
    splits = {"train": (1, 98), "test": (99, 196)}

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform=None,
        crop_to_bbox: bool = False,
        **kwargs,
    ) -> None:
        from scipy.io import loadmat

        check_split("Cars196", split, self.splits)
        base = Path(root).expanduser()
        mat_path = require_file(
            base / "cars_annos.mat", self.name, DATASET.note.replace("ROOT", str(root))
        )
        try:
            annotations = loadmat(mat_path)["annotations"].reshape(-1)
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(
                f"{mat_path} is not the Stanford Cars annotation file ({err})"
            ) from err
        fields = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class")
        absent = [f for f in fields if f not in (annotations.dtype.names or ())]
        if absent:
            raise ValueError(f"{mat_path}: the annotations struct lacks field(s) {absent}")
        lo, hi = self.splits[split]
        paths, classes, boxes = [], [], []
        for record in annotations:
            label = int(_scalar(record["class"]))
            if lo <= label <= hi:
                paths.append(str(_scalar(record["relative_im_path"])))
                classes.append(label)
                boxes.append([float(_scalar(record[f])) for f in fields[1:5]])
        box_array = None
        if crop_to_bbox:
            # MATLAB boxes are 1-based and inclusive -> 0-based, end-exclusive
            box_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            box_array[:, :2] -= 1
        super().__init__(
            base, paths, classes, split, transform=transform, boxes=box_array, **kwargs
        )
