"""The picture of a dataset item for drawing: the image as loaded, before the eval transform."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image

from dml.data.transforms import to_rgb

THUMBNAIL = 128


@contextmanager
def _without_transform(dataset: Any) -> Iterator[None]:
    saved = dataset.transform
    dataset.transform = None
    try:
        yield
    finally:
        dataset.transform = saved


def as_pil(item: Any) -> Image.Image:
    """PIL image of a PIL image, an array or a tensor ([C, H, W] or [H, W]; min-max scaled for display)."""
    if isinstance(item, Image.Image):
        return to_rgb(item)
    arr = (
        item.detach().float().cpu().numpy()
        if isinstance(item, torch.Tensor)
        else np.asarray(item, dtype=np.float32)
    )
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"cannot draw an item of shape {arr.shape}: expected an image [C, H, W] or [H, W]"
        )
    lo, hi = float(arr.min()), float(arr.max())
    scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return to_rgb(Image.fromarray((scaled * 255).round().astype(np.uint8)))


def raw_image(dataset: Any, index: int, size: int = THUMBNAIL) -> Image.Image:
    """Item `index` of `dataset` as an RGB thumbnail (longer side at most `size`).

    File-backed datasets are read through `load_image` (no transform); datasets with a
    `transform` attribute are read with it switched off; anything else has its tensor
    min-max scaled, which undoes any per-image affine normalisation for display.
    """
    load = getattr(dataset, "load_image", None)
    if callable(load):
        image = load(int(index))
    elif hasattr(dataset, "transform"):
        with _without_transform(dataset):
            image = dataset[int(index)][0]
    else:
        image = dataset[int(index)][0]
    image = as_pil(image)
    image.thumbnail((size, size))
    return image
