"""Train-time augmentation of whole batches of in-memory images, as tensors.

A dataset that holds its images in memory as a uint8 array (the embedded and shipped sets) pays
more for a PIL round trip per image (array -> PIL -> crop -> tensor: about 0.5 ms) than for the
whole batch's augmentation done at once on tensors. With ``dataset.batch_transforms: true`` the
train loader hands out uint8 batches [B, C, H, W] (:class:`ArrayBatches`: one fancy-indexing copy
per batch) and the datamodule augments each batch after it reached the device
(:class:`BatchTransform`): a random resized crop (torchvision's sampling of area ``scale`` and
log-uniform aspect ``ratio``, ten tries, then the centre crop), an optional horizontal flip and
brightness / contrast jitter, then the backbone's input normalisation. Crop and flip are one affine
resampling (bilinear, ``F.grid_sample``).

Every random draw of a batch comes from its own generator seeded by (seed, rank, epoch, batch index
in the epoch) (:func:`batch_generator`): a resumed run augments its batches exactly as the run it
continues, whatever ran in between, and the draw does not depend on the device. The spec keys are
those of the per-image pipeline (dml.data.transforms); a spec with keys this path does not do
(``affine``, ``color_jitter``, ``random_crop``) keeps the per-image path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dml.data.transforms import (
    BGR255_MEAN,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    NORMALIZATIONS,
    _pair,
    _positive_int,
    check_jitter,
)

#: the spec keys the batch path implements (the others need the per-image path)
BATCH_KEYS = frozenset(
    {"resize", "crop", "random_resized_crop", "scale", "ratio", "flip", "brightness", "contrast"}
)
_TRIES = 10  # torchvision's RandomResizedCrop tries as often before it falls back to the centre


def supports(spec: Mapping[str, Any] | None) -> bool:
    """True when every key of the transform spec that is switched on is one the batch path does."""
    return all(k in BATCH_KEYS or not v for k, v in dict(spec or {}).items())


def in_memory_images(dataset: Dataset) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 image array [N, H, W(, 3)], index of each item in it) of a dataset that holds its
    images in memory (``.images``; also through dml.data.folds.ClassSubset), else None."""
    indices = None
    if hasattr(dataset, "indices") and hasattr(dataset, "dataset"):  # a ClassSubset
        indices, dataset = np.asarray(dataset.indices), dataset.dataset
    images = getattr(dataset, "images", None)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim not in (3, 4):
        return None
    if images.ndim == 4 and images.shape[-1] != 3:
        return None
    return images, (np.arange(len(images)) if indices is None else indices)


class ArrayBatches(Dataset):
    """A dataset's in-memory images, fetched a batch at a time as (uint8 [B, C, H, W], labels [B]).

    DataLoader(ArrayBatches(...), batch_sampler=..., collate_fn=already_batched): the loader calls
    ``__getitems__`` with a batch's indices, so a batch is one array copy, not B PIL images.
    """

    def __init__(self, images: np.ndarray, indices: np.ndarray, labels: Sequence[int]) -> None:
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.indices) != len(self.labels):
            raise ValueError(f"{len(self.indices)} image indices for {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        pixels = torch.from_numpy(self.images[self.indices[idx]])
        pixels = pixels.unsqueeze(1) if pixels.dim() == 3 else pixels.permute(0, 3, 1, 2)
        return pixels.contiguous(), torch.from_numpy(self.labels[idx])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.__getitems__([index])
        return x[0], int(y[0])


def already_batched(batch: Any) -> Any:
    """collate_fn of an :class:`ArrayBatches` loader: ``__getitems__`` returns the batch itself."""
    return batch


def batch_generator(seed: int, rank: int, epoch: int, index: int) -> torch.Generator:
    """The CPU generator of one training batch's random draws, from (seed, rank, epoch, batch index)."""
    state = np.random.SeedSequence([int(seed), int(rank), int(epoch), int(index)])
    return torch.Generator().manual_seed(int(state.generate_state(1, dtype=np.uint64)[0] >> 1))


class BatchTransform:
    """uint8 image batch [B, 1 or 3, H, W] -> float [B, 3, crop, crop], augmented and normalised.

    spec: a dataset config's ``transform.train`` with keys of :data:`BATCH_KEYS` (see the module
    doc); normalize: the backbone's input convention (imagenet | inception | bgr255 | none).
    """

    def __init__(self, spec: Mapping[str, Any] | None, normalize: str = "imagenet") -> None:
        spec = dict(spec or {})
        if not supports(spec):
            extra = sorted(k for k, v in spec.items() if v and k not in BATCH_KEYS)
            raise ValueError(
                f"transform key(s) {extra} need the per-image pipeline; batch transforms do "
                f"{sorted(BATCH_KEYS)} (set dataset.batch_transforms=false)"
            )
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.resize = _positive_int(spec.get("resize"), "resize")
        self.crop = _positive_int(spec.get("crop"), "crop")
        self.random_resized_crop = bool(spec.get("random_resized_crop", False))
        if self.random_resized_crop and self.crop is None:
            raise ValueError("transform.random_resized_crop needs transform.crop (output size)")
        self.scale = _pair(spec.get("scale", (0.08, 1.0)), "scale")
        self.ratio = _pair(spec.get("ratio", (3 / 4, 4 / 3)), "ratio")
        self.flip = bool(spec.get("flip", False))
        self.brightness = check_jitter(spec.get("brightness"), "brightness")
        self.contrast = check_jitter(spec.get("contrast"), "contrast")
        self.normalize = normalize

    def __repr__(self) -> str:
        return (
            f"BatchTransform(crop={self.crop}, resize={self.resize}, random_resized_crop="
            f"{self.random_resized_crop}, scale={self.scale}, ratio={self.ratio}, flip={self.flip}, "
            f"brightness={self.brightness}, contrast={self.contrast}, normalize={self.normalize})"
        )

    # ---- the crop boxes, in pixels of the input ------------------------------------------
    def _boxes(self, n: int, height: int, width: int, gen: torch.Generator) -> torch.Tensor:
        """[n, 4] boxes (x0, y0, w, h): torchvision's RandomResizedCrop draw, or the eval crop."""
        if not self.random_resized_crop:
            # resize (shorter side) then centre crop, as a box of the input
            side = min(height, width)
            zoom = side / self.resize if self.resize is not None else 1.0
            w = min(width, self.crop * zoom) if self.crop is not None else width
            h = min(height, self.crop * zoom) if self.crop is not None else height
            box = torch.tensor([(width - w) / 2, (height - h) / 2, w, h], dtype=torch.float64)
            return box.expand(n, 4)
        area = height * width
        lo, hi = self.scale
        target = area * (lo + (hi - lo) * torch.rand(n, _TRIES, generator=gen, dtype=torch.float64))
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(
            log_lo + (log_hi - log_lo) * torch.rand(n, _TRIES, generator=gen, dtype=torch.float64)
        )
        w = torch.sqrt(target * aspect).round()
        h = torch.sqrt(target / aspect).round()
        fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)
        first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
        # the fallback of torchvision: the centre crop with the ratio clamped into range
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fw, fh = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fh, fw = height, round(height * self.ratio[1])
        else:
            fw, fh = width, height
        rows = torch.arange(n)
        pick = first.clamp(min=0)
        bw = torch.where(first >= 0, w[rows, pick], torch.full((n,), float(fw), dtype=w.dtype))
        bh = torch.where(first >= 0, h[rows, pick], torch.full((n,), float(fh), dtype=h.dtype))
        u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
        # offsets uniform over the integers 0..W-w, as torch.randint draws them
        x0 = torch.where(
            first >= 0, torch.floor(u[:, 0] * (width - bw + 1)), (width - bw) / 2
        ).round()
        y0 = torch.where(
            first >= 0, torch.floor(u[:, 1] * (height - bh + 1)), (height - bh) / 2
        ).round()
        return torch.stack([x0, y0, bw, bh], 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"BatchTransform takes image batches [B, 1 or 3, H, W], got {tuple(images.shape)}"
            )
        n, _, height, width = images.shape
        device = images.device
        boxes = self._boxes(n, height, width, generator)
        flips = (
            torch.rand(n, generator=generator) < 0.5
            if self.flip
            else torch.zeros(n, dtype=torch.bool)
        )
        bright = _factors(n, self.brightness, generator)
        contrast = _factors(n, self.contrast, generator)
        x = images.float()  # 0-255 until the brightness step (resampling is linear)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out_h = out_w = self.crop
        if out_h is None:  # no crop: the resized image (or the image as it is)
            zoom = self.resize / min(height, width) if self.resize is not None else 1.0
            out_h, out_w = round(height * zoom), round(width * zoom)
        same = (boxes[:, 2] == width) & (boxes[:, 3] == height) & ~flips
        if not (bool(same.all()) and (out_h, out_w) == (height, width)):
            x = _resample(x, boxes, flips, height, width, out_h, out_w)
        else:
            x = x.contiguous()
        # in place from here: each step one pass over the batch
        x.mul_((bright / 255.0).to(device=device).view(-1, 1, 1, 1))
        if self.brightness:
            x.clamp_(0.0, 1.0)
        if self.contrast:
            luma = torch.tensor((0.299, 0.587, 0.114), device=device)
            grey = (x.mean((2, 3)) @ luma).view(-1, 1, 1, 1)
            x.sub_(grey).mul_(contrast.to(device).view(-1, 1, 1, 1)).add_(grey).clamp_(0.0, 1.0)
        return _normalize(x, self.normalize)


def _factors(n: int, strength: float, gen: torch.Generator) -> torch.Tensor:
    """ColorJitter's factors: uniform in [max(0, 1 - s), 1 + s] (always drawn, so the draws of a
    batch do not depend on which jitters are on; s = 0 gives factors of 1)."""
    u = torch.rand(n, generator=gen)
    lo = max(0.0, 1.0 - strength)
    return lo + (1.0 + strength - lo) * u


def _resample(
    x: torch.Tensor,
    boxes: torch.Tensor,
    flips: torch.Tensor,
    height: int,
    width: int,
    out_h: int,
    out_w: int,
) -> torch.Tensor:
    """Each image's box resized to out_h x out_w (bilinear, flipped where asked): one grid_sample."""
    x0, y0, w, h = (v.to(device=x.device, dtype=x.dtype) for v in boxes.unbind(1))
    # normalised coordinates (align_corners=False): the box centre and half-extent in [-1, 1];
    # the grid is separable, built by broadcasting (F.affine_grid's batched matmul costs more)
    cx, cy = (2 * x0 + w) / width - 1, (2 * y0 + h) / height - 1
    sx = torch.where(flips.to(x.device), -w / width, w / width)
    sy = h / height
    u = (2 * torch.arange(out_w, device=x.device, dtype=x.dtype) + 1) / out_w - 1
    v = (2 * torch.arange(out_h, device=x.device, dtype=x.dtype) + 1) / out_h - 1
    gx = (sx[:, None] * u + cx[:, None])[:, None, :].expand(-1, out_h, -1)
    gy = (sy[:, None] * v + cy[:, None])[:, :, None].expand(-1, -1, out_w)
    grid = torch.stack([gx, gy], dim=3)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _normalize(x: torch.Tensor, normalize: str) -> torch.Tensor:
    """RGB in [0, 1] to the backbone's input convention (the per-image pipeline's last step), in place."""
    if normalize == "none":
        return x
    if normalize == "bgr255":
        mean = torch.tensor(BGR255_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return x.flip(1).mul_(255.0).sub_(mean)
    mean, std = (
        (IMAGENET_MEAN, IMAGENET_STD)
        if normalize == "imagenet"
        else (INCEPTION_MEAN, INCEPTION_STD)
    )
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(mean_t).div_(std_t)
