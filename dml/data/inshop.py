"""DeepFashion In-Shop Clothes Retrieval: train | query | gallery from list_eval_partition.txt."""

from __future__ import annotations

import os
from pathlib import Path

from dml.data.description import DatasetInfo
from dml.data.image_list import ImageListDataset, check_split, require_file

DATASET = DatasetInfo(
    name="inshop",
    target="dml.data.inshop.InShop",
    splits=("train", "query", "gallery"),
    note=(
        "In-Shop (DeepFashion) is only distributed through the authors' Google Drive "
        "(http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html): download "
        "'Eval/list_eval_partition.txt' and 'Img/img.zip', then arrange them as "
        "ROOT/list_eval_partition.txt and ROOT/img/... (unzip img.zip inside ROOT), and run "
        "`dml-data check inshop --root ROOT`."
    ),
    counts={"train": (25882, 3997), "query": (14218, None), "gallery": (12612, None)},
)


class InShop(ImageListDataset):
    """In-Shop: ``root`` holds ``list_eval_partition.txt`` (line 1 the count, line 2 the header,
    then ``path item_id train|query|gallery``) and ``img/``. Query and gallery share one label
    space, so their labels compare directly."""

    name = DATASET.name
    expected_counts = DATASET.counts

    def __init__(
        self, root: str | os.PathLike, split: str = "train", transform=None, **kwargs
    ) -> None:
        check_split("InShop", split, DATASET.splits)
        base = Path(root).expanduser()
        if (
            not (base / "list_eval_partition.txt").exists()
            and (base / "Eval" / "list_eval_partition.txt").exists()
        ):
            path = base / "Eval" / "list_eval_partition.txt"
        else:
            path = require_file(
                base / "list_eval_partition.txt",
                self.name,
                DATASET.note.replace("ROOT", str(root)),
            )
        rows = _read_partition(path)
        chosen = [r for r in rows if r[2] == split]
        # query and gallery items are labelled over their union, train over its own items
        space = [r[1] for r in rows if (r[2] == "train") == (split == "train")]
        super().__init__(
            base,
            [r[0] for r in chosen],
            [r[1] for r in chosen],
            split,
            transform=transform,
            label_space=space,
            **kwargs,
        )


def _read_partition(path: Path) -> list[tuple[str, str, str]]:
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ValueError(
            f"{path}: expected line 1 to hold the number of images and line 2 the header "
            "'image_name item_id evaluation_status'"
        )
    count = int(lines[0])
    rows = []
    for number, line in enumerate(lines[2:], 3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[2] not in DATASET.splits:
            raise ValueError(
                f"{path}:{number}: expected 'path item_id train|query|gallery', got {line!r}"
            )
        rows.append((parts[0], parts[1], parts[2]))
    if len(rows) != count:
        raise ValueError(f"{path}: line 1 says {count} images but {len(rows)} rows follow")
    return rows
