"""Labeled Faces in the Wild: images plus the 10 folds of pairs.txt, for face verification."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from dml.data.description import DatasetInfo
from dml.data.download import Archive
from dml.data.image_list import (
    DatasetCountWarning,
    DatasetLayoutError,
    ImageListDataset,
    check_split,
    require_file,
)

_HINT = "Get it with `dml-data download lfw --root {root}` (lfw.tgz, 173 MB, and pairs.txt)."
SPLITS = ("pairs", "all", "train")
# `dml-data check` and `cache` visit the pairs split; "all" has the official image count
DATASET = DatasetInfo(
    name="lfw",
    target="dml.data.lfw.LFW",
    splits=("pairs",),
    archives=(
        Archive("http://vis-www.cs.umass.edu/lfw/lfw.tgz", "a17d05bd522c52d84eca14327a23d494"),
        Archive(
            "http://vis-www.cs.umass.edu/lfw/pairs.txt",
            "9f1ba174e4e1c508ff7cdf10ac338a7d",
            extract=False,
        ),
    ),
    counts={"all": (13233, 5749)},
)


def image_path(name: str, number: int, images_dir: str = "lfw") -> str:
    """``lfw/<Name>/<Name>_NNNN.jpg``."""
    return f"{images_dir}/{name}/{name}_{number:04d}.jpg"


def read_pairs(path: Path) -> tuple[list[tuple[str, int, str, int]], np.ndarray, np.ndarray]:
    """pairs.txt -> (name_a, i, name_b, j) per pair, same-person flags and fold numbers.

    The header is ``folds per_half`` (``10 300``): each fold holds ``per_half`` matched lines
    ``name i j`` then ``per_half`` mismatched lines ``name1 i name2 j``; a one-number header
    (pairsDevTrain.txt) is a single fold.
    """
    with open(path, encoding="utf-8") as fh:
        lines = [line.split() for line in fh if line.strip()]
    if not lines or not all(p.isdigit() for p in lines[0]) or len(lines[0]) not in (1, 2):
        raise ValueError(f"{path}: expected a header 'folds pairs_per_half' such as '10 300'")
    folds, per_half = (1, int(lines[0][0])) if len(lines[0]) == 1 else map(int, lines[0])
    body = lines[1:]
    if len(body) != folds * 2 * per_half:
        raise ValueError(
            f"{path}: the header promises {folds} folds x 2 x {per_half} = {folds * 2 * per_half} "
            f"pairs but {len(body)} lines follow"
        )
    pairs, same, fold = [], [], []
    for k, parts in enumerate(body):
        matched = (k % (2 * per_half)) < per_half
        try:
            if matched and len(parts) == 3:
                pairs.append((parts[0], int(parts[1]), parts[0], int(parts[2])))
            elif not matched and len(parts) == 4:
                pairs.append((parts[0], int(parts[1]), parts[2], int(parts[3])))
            else:
                raise ValueError
        except ValueError:
            kind = "'name i j'" if matched else "'name1 i name2 j'"
            raise ValueError(
                f"{path}:{k + 2}: expected a {kind} line, got {' '.join(parts)!r}"
            ) from None
        same.append(matched)
        fold.append(k // (2 * per_half))
    return pairs, np.asarray(same, dtype=bool), np.asarray(fold, dtype=np.int64)


class LFW(ImageListDataset):
    """LFW: ``root`` holds ``lfw/<Name>/<Name>_NNNN.jpg`` and ``pairs.txt``. Labels are
    identities. ``pairs`` [N, 2] indexes this dataset's items, ``same`` [N] and ``fold`` [N]
    (file order) feed ``dml.metrics.verification_metrics``. ``split="pairs"`` holds only the
    images that pairs.txt uses, ``"all"`` every image under ``lfw/``, ``"train"`` the images of
    identities that no pair uses and that have 2+ images (identity-disjoint from the pairs;
    it has no pairs of its own)."""

    name = DATASET.name
    expected_counts = DATASET.counts
    expected_pairs = 6000

    def __init__(
        self,
        root: str | os.PathLike = ".",
        split: str = "pairs",
        transform=None,
        pairs_file: str = "pairs.txt",
        images_dir: str = "lfw",
        **kwargs,
    ) -> None:
        check_split("LFW", split, SPLITS)
        base = Path(root).expanduser()
        hint = _HINT.format(root=root)
        pairs_path = base / pairs_file
        if not pairs_path.exists() and (base / images_dir / pairs_file).exists():
            pairs_path = base / images_dir / pairs_file
        pairs, same, fold = read_pairs(require_file(pairs_path, self.name, hint))
        if not (base / images_dir).is_dir():
            raise FileNotFoundError(f"lfw: expected the image folder {base / images_dir}. {hint}")
        used = list(
            dict.fromkeys(
                path
                for a, i, b, j in pairs
                for path in (image_path(a, i, images_dir), image_path(b, j, images_dir))
            )
        )
        if split == "pairs":
            paths = used
        else:
            paths = sorted(
                f"{images_dir}/{p.parent.name}/{p.name}"
                for p in (base / images_dir).glob("*/*.jpg")
            )
        if split == "train":
            # identities that no pair uses and that have a positive (>= 2 images)
            in_pairs = {p.split("/")[-2] for p in used}
            counts = Counter(p.split("/")[-2] for p in paths)
            paths = [
                p
                for p in paths
                if p.split("/")[-2] not in in_pairs and counts[p.split("/")[-2]] > 1
            ]
            pairs = []
            if not paths:
                raise DatasetLayoutError(
                    f"lfw: no identity with 2+ images is left outside {pairs_path}"
                )
        identities = [p.split("/")[-2] for p in paths]
        super().__init__(base, paths, identities, split, transform=transform, **kwargs)
        index = {p: k for k, p in enumerate(self.paths)}
        keep, rows = [], []
        for a, i, b, j in pairs:
            pa, pb = image_path(a, i, images_dir), image_path(b, j, images_dir)
            if pa in index and pb in index:  # a skipped (missing) image drops its pairs
                keep.append(True)
                rows.append((index[pa], index[pb]))
            else:
                keep.append(False)
        keep_mask = np.asarray(keep, dtype=bool)
        self.pairs = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        self.same = same[: len(keep_mask)][keep_mask]
        self.fold = fold[: len(keep_mask)][keep_mask]
        self.num_folds = int(self.fold.max()) + 1 if len(self.fold) else 0
        if (
            split != "train"
            and len(self.pairs) != self.expected_pairs
            and pairs_file == "pairs.txt"
        ):
            warnings.warn(
                f"lfw: {len(self.pairs)} usable pairs, the official pairs.txt has {self.expected_pairs}",
                DatasetCountWarning,
                stacklevel=2,
            )

    def _keep_items(self, keep: np.ndarray) -> None:
        """Drop items (unreadable images) and every pair that uses one; kept pairs are re-indexed."""
        super()._keep_items(keep)
        valid = keep[self.pairs].all(axis=1)
        self.pairs = (np.cumsum(keep) - 1)[self.pairs[valid]].reshape(-1, 2)
        self.same = self.same[valid]
        self.fold = self.fold[valid]
