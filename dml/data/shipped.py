"""Image sets rendered once and shipped inside the package (dml/data/embedded/*.npz), and their splits.

The files are written by scripts/build_embedded_datasets.py: an uncompressed .npz whose ``images``
entry is the xz-compressed pixel buffer of shape ``images_shape`` (fonts store 4-bit grey levels,
``levels`` of them) next to small label and name arrays. A file is decoded once per process and
checked against dml/data/embedded/SHA256SUMS first, so a damaged install fails with a clear error.
"""

from __future__ import annotations

import hashlib
import io
import lzma
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from dml.data.embedded import _ArrayImages, _check_split
from dml.data.levels import LABEL_LEVELS, check_label_level

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
__all__ = ["LABEL_LEVELS", "check_label_level"]  # re-exported: their home is dml.data.levels


def expected_sha256(name: str, folder: Path = EMBEDDED_DIR) -> str:
    """The sha256 that folder/SHA256SUMS records for the shipped file `name`."""
    sums = folder / "SHA256SUMS"
    if sums.is_file():
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == name:
                return parts[0]
    raise FileNotFoundError(f"{sums} lists no {name}; reinstall dml")


@cache
def load_shipped(name: str, folder: Path = EMBEDDED_DIR) -> dict[str, np.ndarray]:
    """Every array of the shipped file folder/`name` (e.g. "emoji.npz"), ``images`` decoded to
    uint8 pixels (read-only; decoded once per process).

    Raises FileNotFoundError / ValueError naming the file when it is missing or not the shipped bytes.
    """
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: dml's embedded datasets ship inside the package; reinstall dml "
            "(pip install -e . from a clone, or rebuild with scripts/build_embedded_datasets.py)"
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected_sha256(name, folder):
        raise ValueError(
            f"{path} is damaged (its sha256 is not the one in SHA256SUMS); reinstall dml or rebuild it with "
            "scripts/build_embedded_datasets.py"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:  # the bytes just checked
        arrays = {key: npz[key] for key in npz.files}
    shape = tuple(int(s) for s in arrays.pop("images_shape"))
    pixels = np.frombuffer(lzma.decompress(arrays["images"].tobytes()), dtype=np.uint8).reshape(
        shape
    )
    if "levels" in arrays:  # 4-bit grey levels -> 0..255
        step = 255 // (int(arrays.pop("levels")) - 1)
        pixels = pixels * np.uint8(step)
    pixels.flags.writeable = False
    arrays["images"] = pixels
    return arrays


@lru_cache(maxsize=4)
def shipped_images(name: str, size: int) -> np.ndarray:
    """The images of shipped file `name` at size x size px: as stored, or scaled (Lanczos) once per process."""
    images = load_shipped(name)["images"]
    if images.shape[1] == size:
        return images
    out = np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS)) for im in images]
    )
    out.flags.writeable = False
    return out


def check_image_size(image_size: int, stored: int, dataset: str) -> int:
    """image_size as an int in 8..stored, or a ValueError naming dataset.image_size."""
    if (
        isinstance(image_size, bool)
        or int(image_size) != image_size
        or not 8 <= int(image_size) <= stored
    ):
        raise ValueError(
            f"dataset.image_size={image_size!r}: the {dataset} images are stored at {stored} px; "
            f"choose an integer from 8 to {stored} (the transform may enlarge them further)"
        )
    return int(image_size)


def split_classes(
    classes: np.ndarray, split: str, seed: int, train_fraction: float, num_classes: int | None
) -> np.ndarray:
    """The sorted class ids of `split`: `classes` shuffled by `seed`, the first `num_classes` kept
    (all when None), the first round(train_fraction * n) of those train, the rest test.

    The same seed always gives the same split, and train and test never share a class.
    """
    _check_split(split)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            f"dataset.seed={seed!r} is not a split seed: choose a non-negative integer (it shuffles "
            "the classes before they are cut into train and test)"
        )
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(
            f"dataset.train_fraction={train_fraction!r} must be strictly between 0 and 1 (the share of the "
            "classes that train; the rest are the unseen test classes)"
        )
    classes = np.sort(np.asarray(classes))
    order = np.random.default_rng(int(seed)).permutation(classes)
    if num_classes is not None:
        if (
            isinstance(num_classes, bool)
            or int(num_classes) != num_classes
            or not 4 <= num_classes <= len(classes)
        ):
            raise ValueError(
                f"dataset.num_classes={num_classes!r}: choose an integer from 4 to {len(classes)} (the classes "
                "available), or null for all of them"
            )
        order = order[: int(num_classes)]
    n_train = int(round(float(train_fraction) * len(order)))
    part = order[:n_train] if split == "train" else order[n_train:]
    return np.sort(part)


def check_split_sizes(labels: np.ndarray, split: str, dataset: str, level: str) -> None:
    """A ValueError naming the options to change when the split has < 2 classes or a class < 2 images."""
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise ValueError(
            f"dataset={dataset}: the {split} split has {len(values)} {level} class(es); retrieval needs at least 2. "
            "Raise dataset.num_classes or move dataset.train_fraction toward 0.5"
        )
    if counts.min() < 2:
        raise ValueError(
            f"dataset={dataset}: {int((counts < 2).sum())} {level} class(es) of the {split} split have a single "
            "image (no positive to retrieve); choose other dataset.seed / dataset.num_classes, or for emoji "
            "a larger dataset.min_vendors"
        )


class ShippedImages(_ArrayImages):
    """A class-disjoint split of a shipped set: images, `.labels` (the chosen level),
    `.fine_labels`, `.coarse_labels` (both also as `.label_levels`, dml.data.levels), the names
    behind the ids (`.class_names[fine]`, `.coarse_names[coarse]`) and `.indices`, the positions
    of the split's images in the shipped file.

    A subclass names its shipped `file` and its config name `dataset`, checks its own options and
    hands over the fine and coarse id of every stored image and the classes that may be drawn
    (`candidates`); seed / train_fraction / num_classes pick the split's classes among them
    (`split_classes`), and `usable` (a mask over the stored images, None: all) drops images.
    """

    file: str
    dataset: str

    def __init__(
        self,
        split: str,
        transform: Callable | None,
        image_size: int,
        seed: int,
        train_fraction: float,
        num_classes: int | None,
        label: str,
        *,
        fine: np.ndarray,
        coarse: np.ndarray,
        candidates: np.ndarray,
        class_names: np.ndarray,
        coarse_names: np.ndarray,
        usable: np.ndarray | None = None,
    ) -> None:
        stored = int(load_shipped(self.file)["images"].shape[1])
        size = check_image_size(image_size, stored, self.dataset)
        classes = split_classes(candidates, split, seed, train_fraction, num_classes)
        chosen = np.isin(fine, classes)
        self.indices = np.flatnonzero(chosen if usable is None else usable & chosen)
        fine, coarse = fine[self.indices], coarse[self.indices]
        level = check_label_level(label)
        super().__init__(
            shipped_images(self.file, size)[self.indices],
            fine if level == "fine" else coarse,
            transform,
        )
        self.label_level = level
        self.fine_labels = np.asarray(fine, dtype=np.int64)
        self.coarse_labels = np.asarray(coarse, dtype=np.int64)
        self.label_levels = {"fine": self.fine_labels, "coarse": self.coarse_labels}
        self.class_names = np.asarray(class_names)
        self.coarse_names = np.asarray(coarse_names)
        check_split_sizes(self.labels, split, self.dataset, self.label_level)
