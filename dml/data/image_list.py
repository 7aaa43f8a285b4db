"""The shared base of the file-backed datasets: a list of image files with class ids.

Each dataset family parses its official layout into (relative paths, original class ids,
optional boxes) and hands them here; this class remaps class ids to contiguous labels, checks
that the files exist, compares counts with the official ones, and decodes images (draft mode,
disk cache, bad-image handling).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dml.data.decode import BadImageError, Box, ResizedCache, open_image


class DatasetLayoutError(FileNotFoundError):
    """The root folder does not hold the files a dataset expects."""


class DatasetCountWarning(UserWarning):
    """A split's image or class count differs from the official one."""


class BadImageWarning(UserWarning):
    """An unreadable image was skipped (``skip_bad_images=True``)."""


class _Readable(Dataset):
    """Item i -> whether image ``indices[i]`` of ``images`` decodes: drop_unreadable's check,
    run by a DataLoader so that its workers share the decoding."""

    def __init__(self, images: ImageListDataset, indices: np.ndarray) -> None:
        self.images, self.indices = images, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> bool:
        try:
            self.images.load_image(int(self.indices[index]))
        except BadImageError:
            return False
        return True


def require_file(path: Path, dataset: str, hint: str) -> Path:
    """``path`` if it is a file, else a DatasetLayoutError saying what was expected and how to get it."""
    if not path.is_file():
        raise DatasetLayoutError(
            f"{dataset}: expected the file {path}, which does not exist. {hint}"
        )
    return path


def check_split(dataset: str, split: str, allowed) -> str:
    """``split`` if it is one of ``allowed``, else a ValueError naming the dataset and the choices."""
    if split not in allowed:
        raise ValueError(f"{dataset} split must be one of {list(allowed)}, got {split!r}")
    return split


def find_root(root: str | os.PathLike, marker: str, subdir: str) -> Path:
    """The folder holding ``marker``: ``root/subdir`` (the official archive layout) or ``root`` itself."""
    root = Path(root).expanduser()
    if (root / subdir / marker).exists():
        return root / subdir
    if (root / marker).exists():
        return root
    return root / subdir  # the error names the official location


class ImageListDataset(Dataset):
    """Images listed by path with class ids; ``__getitem__ -> (image, label)``.

    ``labels`` are contiguous 0..C-1 (sorted original ids of ``label_space``, the split's own
    ids by default); ``class_ids`` keeps each item's original id and ``classes[label]`` maps back.
    """

    name = "images"
    #: split -> (number of images, number of classes or None) of the official release
    expected_counts: dict[str, tuple[int, int | None]] = {}

    def __init__(
        self,
        image_root: str | os.PathLike,
        paths: Sequence[str],
        class_ids: Sequence[Any],
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        boxes: np.ndarray | None = None,
        label_space: Sequence[Any] | None = None,
        draft: bool = True,
        cache_dir: str | os.PathLike | None = None,
        cache_size: int = 256,
        skip_bad_images: bool = False,
        check_counts: bool = True,
    ) -> None:
        self.image_root = Path(image_root).expanduser()
        self.split = split
        self.transform = transform
        self.draft = bool(draft)
        self.skip_bad_images = bool(skip_bad_images)
        # skip_bad_images: images dropped from the split (missing at construction, unreadable
        # in drop_unreadable); an image that fails later is replaced (training) unless
        # drop_unreadable ran (evaluation: its split must hold readable images only)
        self.dropped_images: list[tuple[str, Any]] = []  # (path, original class id)
        self.replace_bad_images = self.skip_bad_images
        if len(paths) != len(class_ids):
            raise ValueError(f"{self.name}: {len(paths)} paths but {len(class_ids)} class ids")
        if len(paths) == 0:
            raise DatasetLayoutError(
                f"{self.name}: split {split!r} under {self.image_root} lists no images"
            )
        paths = list(paths)
        class_ids = _as_id_array(class_ids)
        keep = self._existing(paths, class_ids)
        if not keep.all():
            paths = [p for p, k in zip(paths, keep, strict=True) if k]
            class_ids = class_ids[keep]
            boxes = boxes[keep] if boxes is not None else None
        self.paths = paths
        self.class_ids = class_ids
        self.boxes = None if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        space = np.unique(_as_id_array(label_space if label_space is not None else class_ids))
        self.classes = space
        labels = np.searchsorted(space, class_ids)
        if (labels >= len(space)).any() or (
            space[np.minimum(labels, len(space) - 1)] != class_ids
        ).any():
            raise ValueError(
                f"{self.name}: some class ids of split {split!r} are not in its label space"
            )
        self.labels = labels.astype(np.int64)
        self.cache = (
            ResizedCache(cache_dir, cache_size, cropped=self.boxes is not None)
            if cache_dir
            else None
        )
        decode_size = getattr(transform, "decode_size", None)
        if self.cache is not None and decode_size and decode_size > self.cache.size:
            warnings.warn(
                f"{self.name}: cache_size={self.cache.size} is below the {decode_size} px the "
                "transform needs, so cached images get upsampled; raise dataset.cache_size",
                UserWarning,
                stacklevel=2,
            )
        self.bad_images = 0
        if check_counts:
            self._check_counts()

    # -- construction helpers ------------------------------------------------------------
    def _existing(self, paths: list[str], class_ids: np.ndarray) -> np.ndarray:
        keep = np.fromiter((os.path.isfile(self.image_root / p) for p in paths), bool, len(paths))
        missing = [p for p, k in zip(paths, keep, strict=True) if not k]
        if not missing:
            return keep
        if len(missing) == len(paths):
            raise DatasetLayoutError(
                f"{self.name}: none of the {len(paths)} images of split {self.split!r} exist under "
                f"{self.image_root} (first: {missing[0]}); is the image folder extracted there?"
            )
        shown = ", ".join(str(self.image_root / p) for p in missing[:3])
        if not self.skip_bad_images:
            raise BadImageError(
                f"{self.name}: {len(missing)} listed image file(s) are missing, e.g. {shown}; "
                "restore them or set dataset.skip_bad_images=true to skip them"
            )
        warnings.warn(
            f"{self.name}: skipping {len(missing)} missing image file(s) of split {self.split!r}, e.g. {shown}",
            BadImageWarning,
            stacklevel=3,
        )
        self.dropped_images += [
            (p, c) for p, c, k in zip(paths, class_ids.tolist(), keep, strict=True) if not k
        ]
        return keep

    def drop_unreadable(self, num_workers: int = 0, classes: Sequence[int] | None = None) -> int:
        """Decode every image (of the given labels only, when ``classes`` is set) once and remove
        those that fail from the split: with ``skip_bad_images=True``, for evaluation, where a
        replaced image would stay a query with an exact duplicate in the gallery. Warns once;
        returns how many were removed. With a disk cache the pass fills it, so later
        evaluations do not decode twice."""
        if not self.skip_bad_images:
            raise ValueError(f"{self.name}: drop_unreadable needs skip_bad_images=True")
        checked = np.flatnonzero(
            np.ones(len(self), bool) if classes is None else np.isin(self.labels, classes)
        )
        loader = DataLoader(
            _Readable(self, checked), batch_size=64, num_workers=num_workers, collate_fn=list
        )
        readable = np.ones(len(self), dtype=bool)
        readable[checked] = np.fromiter(
            (ok for batch in loader for ok in batch), dtype=bool, count=len(checked)
        )
        self.replace_bad_images = False  # from now on a failing image is an error
        bad = [
            (p, c)
            for p, c, ok in zip(self.paths, self.class_ids.tolist(), readable, strict=True)
            if not ok
        ]
        if not bad:
            return 0
        if not readable.any():
            raise BadImageError(
                f"{self.name}: none of the {len(self)} images of split {self.split!r} under "
                f"{self.image_root} can be decoded (first: {self.image_root / bad[0][0]})"
            )
        self._keep_items(readable)
        self.dropped_images += bad
        shown = ", ".join(str(self.image_root / p) for p, _ in bad[:3])
        warnings.warn(
            f"{self.name}: dropped {len(bad)} unreadable image(s) from split {self.split!r}, "
            f"e.g. {shown}",
            BadImageWarning,
            stacklevel=2,
        )
        return len(bad)

    def _keep_items(self, keep: np.ndarray) -> None:
        """Keep only the items where ``keep`` is true (subclasses with item indices remap them)."""
        self.paths = [p for p, k in zip(self.paths, keep, strict=True) if k]
        self.class_ids = self.class_ids[keep]
        self.labels = self.labels[keep]
        if self.boxes is not None:
            self.boxes = self.boxes[keep]

    def _check_counts(self) -> None:
        expected = self.expected_counts.get(self.split)
        if expected is None:
            return
        images, classes = expected
        got_classes = len(np.unique(self.labels))
        if len(self) != images or (classes is not None and got_classes != classes):
            warnings.warn(
                f"{self.name} split {self.split!r}: {len(self):,} images / {got_classes:,} classes, "
                f"the official release has {images:,} images"
                + (f" / {classes:,} classes" if classes is not None else "")
                + f" (root {self.image_root}); results will not be comparable to published ones",
                DatasetCountWarning,
                stacklevel=3,
            )

    # -- access --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def box(self, index: int) -> Box | None:
        return None if self.boxes is None else tuple(self.boxes[index])

    def load_image(self, index: int) -> Image.Image:
        """The decoded image of item ``index`` (cropped to its box when the dataset has boxes)."""
        path = self.image_root / self.paths[index]
        if self.cache is not None:
            return self.cache.load(path, self.paths[index], self.box(index))
        decode_size = getattr(self.transform, "decode_size", None) if self.draft else None
        return open_image(path, decode_size, self.box(index))

    def load_image_or_substitute(self, index: int) -> tuple[Image.Image, int]:
        """Image ``index``, or with skip_bad_images (training) another image of its class when
        it cannot be decoded: the batch keeps its class balance. Warns at the first such image
        in this process (each DataLoader worker is one) and counts the rest in ``bad_images``."""
        try:
            return self.load_image(index), index
        except BadImageError as err:
            if not self.skip_bad_images:
                raise BadImageError(
                    f"{err} (set dataset.skip_bad_images=true to skip such files)"
                ) from err
            if not self.replace_bad_images:
                raise BadImageError(
                    f"{err} (it was readable when split {self.split!r} was checked)"
                ) from err
            self.bad_images += 1
            if self.bad_images == 1:
                warnings.warn(
                    f"{self.name}: replacing unreadable images of split {self.split!r} by other "
                    f"images of their class (warned once per process), first: {err}",
                    BadImageWarning,
                    stacklevel=3,
                )
        # another image of the same class keeps the batch's class balance
        same = np.flatnonzero(self.labels == self.labels[index])
        for other in np.roll(same, -int(np.searchsorted(same, index)) - 1):
            if other == index:
                continue
            try:
                return self.load_image(int(other)), int(other)
            except BadImageError:
                continue
        raise BadImageError(
            f"{self.name}: every image of class {self.classes[self.labels[index]]!r} is unreadable "
            f"(first: {self.image_root / self.paths[index]})"
        )

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, _ = self.load_image_or_substitute(int(index))
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        if not hasattr(self, "labels"):  # construction failed part-way
            return f"{type(self).__name__}(not loaded)"
        return (
            f"{type(self).__name__}(split={self.split!r}, images={len(self)}, "
            f"classes={len(np.unique(self.labels))}, root={str(self.image_root)!r})"
        )


def _as_id_array(ids: Sequence[Any]) -> np.ndarray:
    """Class ids as an int64 array when they are all integers, else as a str array."""
    arr = np.asarray(ids)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    return arr.astype(str)
