"""Stanford Online Products: Ebay_train.txt (11,318 classes) / Ebay_test.txt (11,316 classes)."""

from __future__ import annotations

import os

from dml.data.description import DatasetInfo
from dml.data.download import Archive
from dml.data.image_list import ImageListDataset, check_split, find_root, require_file

DATASET = DatasetInfo(
    name="sop",
    target="dml.data.sop.StanfordOnlineProducts",
    splits=("train", "test"),
    archives=(
        Archive(
            "ftp://cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip",
            "7f73d41a2f44250d4779881525aea32e",
        ),
    ),
    counts={"train": (59551, 11318), "test": (60502, 11316)},
)

_HINT = "Get it with `dml-data download sop --root {root}` (Stanford_Online_Products.zip, 2.9 GB)."
HEADER = ["image_id", "class_id", "super_class_id", "path"]


class StanfordOnlineProducts(ImageListDataset):
    """SOP: ``root`` holds ``Stanford_Online_Products/`` with ``Ebay_train.txt`` and
    ``Ebay_test.txt`` (header ``image_id class_id super_class_id path``; paths relative to it)."""

    name = DATASET.name
    expected_counts = DATASET.counts
    files = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}

    def __init__(
        self, root: str | os.PathLike, split: str = "train", transform=None, **kwargs
    ) -> None:
        check_split("StanfordOnlineProducts", split, self.files)
        base = find_root(root, self.files[split], "Stanford_Online_Products")
        path = require_file(base / self.files[split], self.name, _HINT.format(root=root))
        paths, classes, super_classes, image_ids = [], [], [], []
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().split()
            if header != HEADER:
                raise ValueError(
                    f"{path}: expected the header {' '.join(HEADER)!r}, got {' '.join(header)!r}"
                )
            for number, line in enumerate(fh, 2):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 4:
                    raise ValueError(f"{path}:{number}: expected 4 fields, got {line.strip()!r}")
                image_ids.append(int(parts[0]))
                classes.append(int(parts[1]))
                super_classes.append(int(parts[2]))
                paths.append(parts[3])
        self.image_ids = image_ids
        self.super_class_ids = super_classes
        super().__init__(base, paths, classes, split, transform=transform, **kwargs)
