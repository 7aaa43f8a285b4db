"""Image transforms from a dataset config's ``transform.train`` / ``transform.eval`` mapping.

The papers' protocols: train ``RandomResizedCrop(crop, scale) + flip``, eval ``Resize(resize) +
CenterCrop(crop)``; ImageNet normalisation for torchvision/timm backbones, [-1, 1] (``inception``,
timm's name; TensorFlow's EfficientNet-Lite), or the BGR 0-255 convention of the Caffe-converted
BN-Inception weights.

Spec keys (all optional): ``resize`` (shorter side, px), ``crop`` (output side, px),
``random_resized_crop`` (bool), ``scale`` ([lo, hi] area fraction), ``ratio`` ([lo, hi] aspect),
``random_crop`` (bool: random instead of centre crop when not random-resized), ``flip`` (bool),
``color_jitter`` (float strength, 0 = off), ``brightness`` / ``contrast`` (float strength of that
jitter alone, 0 = off: for images whose colour is part of the class, such as emoji), ``affine`` (random affine warp: a mapping of
``degrees``, ``translate`` [fx, fy], ``scale`` [lo, hi], ``shear`` degrees; null = off).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from PIL import Image
from torchvision import transforms as T

# channel statistics of each convention, in the channel order of the output tensor
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# RGB in [-1, 1]: Inception v3 and the TensorFlow EfficientNet-Lite weights (timm calls it inception)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
BGR255_MEAN = (104.0, 117.0, 128.0)  # BN-Inception (Caffe) mean, B, G, R

NORMALIZATIONS = ("imagenet", "inception", "bgr255", "none")
SPEC_KEYS = frozenset(
    {
        "resize",
        "crop",
        "random_resized_crop",
        "scale",
        "ratio",
        "random_crop",
        "flip",
        "color_jitter",
        "brightness",
        "contrast",
        "affine",
    }
)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparent pixels become white rather than black."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


class _ToRGB:
    """Picklable wrapper of :func:`to_rgb` (DataLoader workers pickle the transform)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return to_rgb(image)

    def __repr__(self) -> str:
        return "ToRGB()"


class _RGBToBGR255:
    """[3, H, W] RGB in [0, 1] -> BGR in [0, 255] minus the BN-Inception mean."""

    def __init__(self) -> None:
        self.mean = torch.tensor(BGR255_MEAN).view(3, 1, 1)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.flip(0) * 255.0 - self.mean

    def __repr__(self) -> str:
        return f"RGBToBGR255(mean={BGR255_MEAN})"


class ImageTransform:
    """PIL image -> float tensor [3, crop, crop]; ``decode_size`` tells the loader how small the
    image may be decoded (JPEG draft mode) without losing pixels the pipeline would keep."""

    def __init__(self, pipeline: T.Compose, decode_size: int | None, spec: dict[str, Any]):
        self.pipeline = pipeline
        self.decode_size = decode_size
        self.spec = spec

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.pipeline(image)

    def __repr__(self) -> str:
        return f"ImageTransform(decode_size={self.decode_size}, {self.pipeline!r})"


def _pair(value: Any, key: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"transform.{key} must be a pair [lo, hi], got {value!r}") from None
    if not 0 < lo <= hi:
        raise ValueError(f"transform.{key} must satisfy 0 < lo <= hi, got {value!r}")
    return lo, hi


def _positive_int(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"transform.{key} must be a positive integer or null, got {value!r}")
    return int(value)


def check_jitter(value: Any, key: str) -> float:
    """A jitter strength >= 0 (null: 0), or a ValueError naming transform.<key>."""
    strength = float(value or 0.0)
    if strength < 0:
        raise ValueError(f"transform.{key} must be >= 0, got {value!r}")
    return strength


AFFINE_KEYS = ("degrees", "translate", "scale", "shear")


def _affine(node: Any) -> T.RandomAffine:
    """RandomAffine from ``{degrees, translate, scale, shear}`` (small warps for centred digits)."""
    if not isinstance(node, Mapping) or set(node) - set(AFFINE_KEYS):
        raise ValueError(f"transform.affine must be a mapping of {list(AFFINE_KEYS)}, got {node!r}")
    degrees = float(node.get("degrees", 0.0))
    shear = float(node.get("shear", 0.0))
    if degrees < 0 or shear < 0:
        raise ValueError(
            f"transform.affine degrees and shear must be >= 0, got {degrees} and {shear}"
        )
    translate = node.get("translate")
    if translate is not None:
        tx, ty = (float(v) for v in translate)
        if not (0 <= tx <= 1 and 0 <= ty <= 1):
            raise ValueError(
                f"transform.affine.translate must be fractions in [0, 1], got {translate!r}"
            )
        translate = (tx, ty)
    scale = _pair(node["scale"], "affine.scale") if node.get("scale") is not None else None
    return T.RandomAffine(degrees, translate=translate, scale=scale, shear=shear or None)


def build_transform(spec: Mapping[str, Any] | None, normalize: str = "imagenet") -> ImageTransform:
    """Build the train or eval pipeline of a dataset config (see the module doc for the keys)."""
    spec = dict(spec or {})
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError(
            f"unknown transform key(s) {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}"
        )
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    resize = _positive_int(spec.get("resize"), "resize")
    crop = _positive_int(spec.get("crop"), "crop")
    steps: list[Callable] = [_ToRGB()]
    if spec.get("random_resized_crop", False):
        if crop is None:
            raise ValueError("transform.random_resized_crop needs transform.crop (output size)")
        scale = _pair(spec.get("scale", (0.08, 1.0)), "scale")
        ratio = _pair(spec.get("ratio", (3 / 4, 4 / 3)), "ratio")
        steps.append(T.RandomResizedCrop(crop, scale=scale, ratio=ratio, antialias=True))
    else:
        if resize is not None:
            steps.append(T.Resize(resize, antialias=True))
        if crop is not None:
            steps.append(
                T.RandomCrop(crop, pad_if_needed=True)
                if spec.get("random_crop")
                else T.CenterCrop(crop)
            )
    if spec.get("affine"):
        steps.append(_affine(spec["affine"]))
    if spec.get("flip", False):
        steps.append(T.RandomHorizontalFlip())
    jitter = check_jitter(spec.get("color_jitter"), "color_jitter")
    if jitter > 0:
        steps.append(T.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    brightness = check_jitter(spec.get("brightness"), "brightness")
    contrast = check_jitter(spec.get("contrast"), "contrast")
    if brightness or contrast:
        steps.append(T.ColorJitter(brightness=brightness, contrast=contrast))
    steps.append(T.ToTensor())
    if normalize == "imagenet":
        steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    elif normalize == "inception":
        steps.append(T.Normalize(INCEPTION_MEAN, INCEPTION_STD))
    elif normalize == "bgr255":
        steps.append(_RGBToBGR255())
    sizes = [s for s in (resize, crop) if s is not None]
    if spec.get("random_resized_crop", False):
        sizes = [crop]
    decode_size = max(sizes) if sizes else None
    return ImageTransform(T.Compose(steps), decode_size, spec)
