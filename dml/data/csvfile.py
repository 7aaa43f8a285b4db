"""Own data as a table: ``path,label[,split]`` rows, paths relative to the dataset root."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from dml.data.description import DatasetInfo
from dml.data.folder import class_disjoint_split
from dml.data.image_list import DatasetLayoutError, ImageListDataset

# your own table: no official counts, the splits come from its split column or the cut
DATASET = DatasetInfo(
    name="csv",
    target="dml.data.csvfile.CsvDataset",
    splits=("train", "test"),
    note=(
        "this is your own data, nothing to download: put it under ROOT (see the README's "
        "'Own data'), then check it with `dml-data check csv --root ROOT --verify-images`"
    ),
)


def read_rows(path: Path) -> list[tuple[str, str, str | None]]:
    """(path, label, split or None) per row; a first row ``path,label[,split]`` is a header."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    out = []
    for number, row in enumerate(rows, 1):
        if len(row) not in (2, 3):
            raise ValueError(f"{path}: row {number} should be path,label[,split], got {row!r}")
        out.append((row[0].strip(), row[1].strip(), row[2].strip() if len(row) == 3 else None))
    if not out:
        raise DatasetLayoutError(f"csv: {path} holds no rows; expected path,label[,split] rows")
    return out


class CsvDataset(ImageListDataset):
    """Rows ``path,label[,split]`` in ``root/csv_file``. With a split column, ``split`` keeps its
    rows (train | test | query | gallery | any name; query and gallery share labels); without,
    train | test cut the sorted labels at ``train_fraction`` (class-disjoint) and ``all`` keeps all."""

    name = DATASET.name

    @staticmethod
    def available_splits(
        root: str | os.PathLike, csv_file: str = "labels.csv", **options
    ) -> tuple[str, ...]:
        """The table's split column values (train first), or train and test without one."""
        table = Path(csv_file).expanduser()
        table = table if table.is_absolute() else Path(root).expanduser() / table
        if not table.is_file():
            return ("train", "test")  # the dataset itself raises the error that says what to do
        names = {r[2] for r in read_rows(table) if r[2] is not None}
        if not names:
            return ("train", "test")
        order = ("train", "test", "query", "gallery")
        return tuple(n for n in order if n in names) + tuple(sorted(names - set(order)))

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform=None,
        csv_file: str = "labels.csv",
        train_fraction: float = 0.5,
        **kwargs,
    ) -> None:
        root = Path(root).expanduser()
        table = Path(csv_file).expanduser()
        table = table if table.is_absolute() else root / table
        if not table.is_file():
            raise DatasetLayoutError(
                f"csv: expected the table {table} with rows path,label[,split] (paths relative to "
                f"{root}); set dataset.root and dataset.csv_file"
            )
        rows = read_rows(table)
        has_split = [r[2] is not None for r in rows]
        if any(has_split) and not all(has_split):
            raise ValueError(f"{table}: either every row has a split column or none does")
        if all(has_split):
            names = sorted({r[2] for r in rows})
            chosen = [r for r in rows if r[2] == split] if split != "all" else rows
            if not chosen:
                raise ValueError(f"{table}: no row has split {split!r}; splits present: {names}")
            group = ("query", "gallery") if split in ("query", "gallery") else (split,)
            space = [r[1] for r in rows if r[2] in group] if split != "all" else None
        elif split in ("train", "test"):
            keep = class_disjoint_split([r[1] for r in rows], split, train_fraction)
            chosen, space = [r for r in rows if r[1] in keep], None
        elif split == "all":
            chosen, space = rows, None
        else:
            raise ValueError(
                f"{table} has no split column, so split must be train, test or all, got {split!r}"
            )
        labels = [r[1] for r in chosen]
        if all(_is_int(v) for v in labels):
            labels = [int(v) for v in labels]
            space = None if space is None else [int(v) for v in space]
        super().__init__(
            root,
            [r[0] for r in chosen],
            labels,
            split,
            transform=transform,
            label_space=space,
            **kwargs,
        )


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True
