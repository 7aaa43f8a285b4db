"""Datasets that ship with dml (no download): scikit-learn's digits and procedural multi-mode shapes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from dml.data.levels import check_label_level

_SPLITS = ("train", "test")


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(
            f"split={split!r} is not one of {_SPLITS} (embedded datasets have train and test)"
        )


class _ArrayImages(Dataset):
    """Images held in memory as a uint8 array [N, H, W]; returns (PIL RGB image or transformed, label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable | None) -> None:
        self.images = images
        self.labels = labels.astype(np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index]).convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


# the 8 symmetries of the square (rotations by 0/90/180/270 degrees, each with and without a
# left-right mirror) as functions of an image stack [N, H, W]
DIHEDRAL = (
    lambda a: a,
    lambda a: np.rot90(a, 1, axes=(1, 2)),
    lambda a: np.rot90(a, 2, axes=(1, 2)),
    lambda a: np.rot90(a, 3, axes=(1, 2)),
    lambda a: a[:, :, ::-1],
    lambda a: np.rot90(a[:, :, ::-1], 1, axes=(1, 2)),
    lambda a: np.rot90(a[:, :, ::-1], 2, axes=(1, 2)),
    lambda a: np.rot90(a[:, :, ::-1], 3, axes=(1, 2)),
)


class Digits(_ArrayImages):
    """scikit-learn's 1,797 handwritten 8x8 digits, upsampled; classes 0-4 train, 5-9 test (class-disjoint).

    dihedral_classes (train split only): each of the 8 rotations/mirrorings of the training
    digits becomes a class of its own (label digit + 5 * symmetry index: 40 classes, 7,208
    images), the few-shot trick of rotated Omniglot characters as new classes. Five training
    classes are too few for features that carry over to unseen digits; forty are not. The
    test split is never touched.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        transform: Callable | None = None,
        image_size: int = 32,
        dihedral_classes: bool = False,
    ) -> None:
        from sklearn.datasets import load_digits

        _check_split(split)
        if dihedral_classes and split != "train":
            raise ValueError(
                f"dihedral_classes=true adds training classes; it is for split=train only, got split={split!r}"
            )
        data = load_digits()
        keep = data.target < 5 if split == "train" else data.target >= 5
        # 0-16 grey levels -> 0-255, bilinear upsampling to image_size
        small = (data.images[keep] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        images = np.stack(
            [
                np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.BILINEAR))
                for im in small
            ]
        )
        labels = data.target[keep]
        if dihedral_classes:
            images = np.concatenate([np.ascontiguousarray(f(images)) for f in DIHEDRAL])
            labels = np.concatenate([labels + 5 * i for i in range(len(DIHEDRAL))])
        super().__init__(images, labels, transform)


class Synthetic(_ArrayImages):
    """Procedural images whose classes each have several distinct modes (the class-collapse setting).

    Every class owns `modes_per_class` prototypes (a random shape: position, size, orientation and
    intensity pattern); an image is one prototype plus jitter and noise. Deterministic for `seed`;
    train and test use disjoint classes (the first `num_classes // 2` train, the rest test).
    `label_levels` (dml.data.levels) name each image's `coarse` level, the class, and its `fine`
    level, the mode (class * modes_per_class + mode); label picks which one is `.labels`
    (coarse, the class, by default).
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "train",
        transform: Callable | None = None,
        num_classes: int = 20,
        modes_per_class: int = 3,
        images_per_mode: int = 20,
        image_size: int = 32,
        seed: int = 0,
        label: str = "coarse",
    ) -> None:
        _check_split(split)
        check_label_level(label)
        if num_classes < 4 or modes_per_class < 1 or images_per_mode < 2:
            raise ValueError(
                "Synthetic needs num_classes >= 4, modes_per_class >= 1 and images_per_mode >= 2, "
                f"got {num_classes}, {modes_per_class}, {images_per_mode}"
            )
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:image_size, 0:image_size] / image_size
        half = num_classes // 2
        classes = range(half) if split == "train" else range(half, num_classes)
        # draw every class's prototypes in order, so a class looks the same whichever split asks
        protos = [
            [self._prototype(rng) for _ in range(modes_per_class)] for _ in range(num_classes)
        ]
        images, labels, modes = [], [], []
        noise_rng = np.random.default_rng(seed + 1 + (0 if split == "train" else 1))
        for c in classes:
            for m, p in enumerate(protos[c]):
                for _ in range(images_per_mode):
                    images.append(self._render(p, xx, yy, noise_rng))
                    labels.append(c)
                    modes.append(c * modes_per_class + m)
        levels = {
            "coarse": np.asarray(labels, dtype=np.int64),
            "fine": np.asarray(modes, dtype=np.int64),
        }
        super().__init__(np.stack(images), levels[label], transform)
        self.label_levels = levels

    @staticmethod
    def _prototype(rng: np.random.Generator) -> dict:
        return {
            "cx": rng.uniform(0.25, 0.75),
            "cy": rng.uniform(0.25, 0.75),
            "rx": rng.uniform(0.08, 0.3),
            "ry": rng.uniform(0.08, 0.3),
            "angle": rng.uniform(0, np.pi),
            "freq": rng.uniform(2, 10),
            "phase": rng.uniform(0, 2 * np.pi),
            "level": rng.uniform(0.4, 1.0),
        }

    @staticmethod
    def _render(p: dict, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cx, cy = p["cx"] + rng.normal(0, 0.03), p["cy"] + rng.normal(0, 0.03)
        ca, sa = np.cos(p["angle"]), np.sin(p["angle"])
        u = ((xx - cx) * ca + (yy - cy) * sa) / p["rx"]
        v = (-(xx - cx) * sa + (yy - cy) * ca) / p["ry"]
        blob = (u**2 + v**2) <= 1.0
        stripes = 0.5 + 0.5 * np.sin(p["freq"] * 2 * np.pi * u * p["rx"] + p["phase"])
        img = blob * p["level"] * (0.6 + 0.4 * stripes) + rng.normal(0, 0.05, xx.shape)
        return (img.clip(0, 1) * 255).astype(np.uint8)
