"""Image decoding for the file-backed datasets: clear errors, JPEG draft mode, resized disk cache.

Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the pipeline only needs a much
smaller image, which is several times faster than a full decode followed by a resize. The disk
cache stores each image once, cropped to its box and shrunk to a fixed shorter side, so later
epochs read small files.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from dml.data.transforms import to_rgb

# box: (x1, y1, x2, y2) in pixels of the original image
Box = tuple[float, float, float, float]


class BadImageError(OSError):
    """An image file that cannot be read or decoded (missing, truncated, not an image)."""


def _draft_request(size: tuple[int, int], region: tuple[float, float], decode_size: int):
    """The size to pass to ``Image.draft`` so that ``region`` keeps >= ``decode_size`` px on
    its shorter side, or None when no reduction of at least 2x is possible."""
    factor = min(region) / decode_size
    if factor < 2:
        return None
    return math.ceil(size[0] / factor), math.ceil(size[1] / factor)


def open_image(
    path: str | os.PathLike, decode_size: int | None = None, box: Box | None = None
) -> Image.Image:
    """Decode ``path`` fully (cropped to ``box`` when given); JPEGs at reduced scale when the
    shorter side of the (cropped) image is at least twice ``decode_size``. Raises BadImageError
    naming the file when it is missing, truncated or not an image."""
    try:
        image = Image.open(path)
        if decode_size and image.format == "JPEG":
            region = (box[2] - box[0], box[3] - box[1]) if box is not None else image.size
            request = _draft_request(image.size, region, decode_size)
            if request is not None:
                full = image.size
                image.draft(None, request)
                if box is not None and image.size != full:
                    sx, sy = image.size[0] / full[0], image.size[1] / full[1]
                    box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        image.load()
    except FileNotFoundError as err:
        raise BadImageError(f"image file not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadImageError(f"cannot decode image {path}: {err}") from err
    if box is not None:
        image = image.crop(_clip_box(box, image.size))
    return image


def _clip_box(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Round the box outward to whole pixels inside the image, at least 1 px wide and high."""
    x1 = min(max(0, math.floor(box[0])), size[0] - 1)
    y1 = min(max(0, math.floor(box[1])), size[1] - 1)
    x2 = max(min(size[0], math.ceil(box[2])), x1 + 1)
    y2 = max(min(size[1], math.ceil(box[3])), y1 + 1)
    return x1, y1, x2, y2


def shrink(image: Image.Image, shorter_side: int) -> Image.Image:
    """Resize so the shorter side is ``shorter_side`` (never enlarges)."""
    w, h = image.size
    if min(w, h) <= shorter_side:
        return image
    scale = shorter_side / min(w, h)
    return image.resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR, reducing_gap=2.0
    )


class ResizedCache:
    """On-disk cache of images shrunk to a fixed shorter side (and cropped to their box).

    ``cache_dir/<size>[-bbox]/<path relative to the dataset root>``; written atomically, so
    several DataLoader workers (or runs) can fill it at once.
    """

    def __init__(
        self, cache_dir: str | os.PathLike, size: int, cropped: bool = False, quality: int = 95
    ):
        if int(size) < 1:
            raise ValueError(f"cache_size must be a positive integer, got {size}")
        self.size = int(size)
        self.quality = int(quality)
        self.dir = Path(cache_dir).expanduser() / f"{self.size}{'-bbox' if cropped else ''}"

    def path_for(self, relative: str) -> Path:
        # absolute paths and ".." (possible in csv tables) still land inside the cache folder
        rel = Path(
            *[
                ("__" if p == ".." else p)
                for p in Path(relative).parts
                if p != Path(relative).anchor
            ]
        )
        if rel.suffix.lower() not in (".jpg", ".jpeg"):
            rel = rel.with_name(rel.name + ".jpg")  # the cache always stores JPEG
        return self.dir / rel

    def load(self, source: str | os.PathLike, relative: str, box: Box | None = None) -> Image.Image:
        """The cached image, creating it from ``source`` on first use."""
        cached = self.path_for(relative)
        if cached.is_file():
            try:
                return open_image(cached)
            except BadImageError:
                cached.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
        image = shrink(to_rgb(open_image(source, self.size, box)), self.size)
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cached.name}.", suffix=".tmp", dir=cached.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                image.save(fh, format="JPEG", quality=self.quality)
            os.replace(tmp, cached)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return image
