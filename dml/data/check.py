"""Compare a dataset folder with the official release: counts per split, optionally decode all."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from dml.data.decode import BadImageError
from dml.data.image_list import DatasetCountWarning
from dml.data.registry import dataset_info


@dataclass
class SplitReport:
    split: str
    images: int
    classes: int
    expected_images: int | None
    expected_classes: int | None
    bad_images: list[str]
    extra: str = ""
    extra_ok: bool = True

    @property
    def ok(self) -> bool:
        return (
            self.extra_ok
            and (self.expected_images is None or self.images == self.expected_images)
            and (self.expected_classes is None or self.classes == self.expected_classes)
            and not self.bad_images
        )


def check_dataset(
    name: str,
    root: str | os.PathLike,
    verify_images: bool = False,
    progress: bool = False,
    **options: Any,
) -> list[SplitReport]:
    """One report per split of ``name`` under ``root``; raises the dataset's own layout error
    (which says how to get the files) when the folder does not hold the expected layout.
    ``options`` go to the dataset class (own data: csv_file, train_fraction), whose
    ``available_splits`` names the splits when it has one."""
    info = dataset_info(name)
    splits = (
        info.cls.available_splits(root, **options)
        if hasattr(info.cls, "available_splits")
        else info.splits
    )
    reports = []
    for split in splits:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetCountWarning)
            data = info.cls(root, split=split, check_counts=False, draft=False, **options)
        expected_images, expected_classes = data.expected_counts.get(split, (None, None))
        extra, extra_ok = "", True
        if not data.expected_counts:  # own data: what sizes the batches can have
            sizes = np.bincount(data.labels)[np.unique(data.labels)]
            extra = f"{sizes.min()}-{sizes.max()} images per class"
            if (sizes < 2).any():
                extra += f", {int((sizes < 2).sum())} class(es) with 1 image (no positive)"
        if hasattr(data, "pairs"):
            expected_images = expected_classes = None  # the "pairs" subset has no official count
            extra = f"{len(data.pairs):,} pairs ({int(data.same.sum()):,} same) in {data.num_folds} folds"
            if len(data.pairs) != data.expected_pairs:
                extra += f", expected {data.expected_pairs:,}"
                extra_ok = False
        bad = _decode_all(data, progress) if verify_images else []
        reports.append(
            SplitReport(
                split,
                len(data),
                len(np.unique(data.labels)),
                expected_images,
                expected_classes,
                bad,
                extra,
                extra_ok,
            )
        )
    return reports


def _decode_all(data, progress: bool) -> list[str]:
    from tqdm import tqdm

    bad = []
    for index in tqdm(range(len(data)), desc=f"decoding {data.split}", disable=not progress):
        try:
            data.load_image(index)
        except BadImageError as err:
            bad.append(str(err))
    return bad


def format_reports(name: str, root: str | os.PathLike, reports: list[SplitReport]) -> str:
    """A markdown table of the reports."""

    def fmt(n):
        return "-" if n is None else f"{n:,}"

    lines = [
        f"{name} at {root}",
        "",
        "| split | images | expected | classes | expected | status |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        status = "ok" if r.ok else "MISMATCH"
        if r.bad_images:
            status += f", {len(r.bad_images)} bad image(s)"
        if r.extra:
            status += f"; {r.extra}"
        lines.append(
            f"| {r.split} | {r.images:,} | {fmt(r.expected_images)} | {r.classes:,} | "
            f"{fmt(r.expected_classes)} | {status} |"
        )
    for r in reports:
        lines += [f"bad: {b}" for b in r.bad_images[:20]]
    return "\n".join(lines)
