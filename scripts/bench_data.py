"""Images per second of the data pipeline: full JPEG decode vs draft mode vs pre-resized cache.

Writes generated JPEG fixtures (smooth photo-like content, so they compress and decode like
real photos) at two sizes, then times the train pipeline (random-resized crop 224 + flip +
ImageNet normalisation) and the eval pipeline (resize 256 + centre crop 224) over a
FolderDataset, in this process with one torch thread, as inside a DataLoader worker (the
number is per worker). Throughput is measured in this process's CPU time, so other jobs on a
shared machine do not distort it. Prints a markdown table.

    python scripts/bench_data.py [--images 150] [--repeats 2] [--sizes 500x375 1000x750]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dml.data import FolderDataset, build_transform

TRAIN = {"crop": 224, "random_resized_crop": True, "scale": [0.16, 1.0], "flip": True}
EVAL = {"resize": 256, "crop": 224}


def photo_like(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour gradients plus blurred blobs and mild noise, like a natural photo."""
    small = rng.integers(0, 256, (max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    base = np.asarray(
        Image.fromarray(small).resize((width, height), Image.BICUBIC), dtype=np.float32
    )
    noise = rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def write_fixtures(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        path = root / f"class_{i % 10:02d}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        photo_like(rng, *size).save(path, quality=90)


def images_per_cpu_second(dataset) -> float:
    """One pass over the dataset (load + decode + transform), in images per second of this
    process's CPU time: other jobs on a shared machine do not count against it."""
    start = time.process_time()
    for i in range(len(dataset)):
        dataset[i]
    return len(dataset) / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=150, help="images per fixture size")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported")
    parser.add_argument(
        "--sizes", nargs="+", default=["500x375", "1000x750"], help="WxH of the fixtures"
    )
    parser.add_argument("--cache-size", type=int, default=256, help="shorter side of cached images")
    args = parser.parse_args()
    torch.set_num_threads(1)  # what DataLoader workers use

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size_text in args.sizes:
            w, h = (int(v) for v in size_text.split("x"))
            root = Path(tmp) / size_text
            write_fixtures(root, args.images, (w, h))
            cache = Path(tmp) / f"cache-{size_text}"
            fill = FolderDataset(root, "all", cache_dir=cache, cache_size=args.cache_size)
            start = time.process_time()
            for i in range(len(fill)):  # the first epoch with a cache writes it
                fill.load_image(i)
            fill_rate = len(fill) / (time.process_time() - start)
            for name, spec in (("train", TRAIN), ("eval", EVAL)):
                transform = build_transform(spec, normalize="imagenet")
                variants = {
                    "full decode": FolderDataset(root, "all", transform=transform, draft=False),
                    "draft mode": FolderDataset(root, "all", transform=transform, draft=True),
                    f"cache {args.cache_size}px": FolderDataset(
                        root,
                        "all",
                        transform=transform,
                        cache_dir=cache,
                        cache_size=args.cache_size,
                    ),
                }
                best = dict.fromkeys(variants, 0.0)
                for _ in range(args.repeats):  # interleaved, best of repeats
                    for label, data in variants.items():
                        best[label] = max(best[label], images_per_cpu_second(data))
                base = best["full decode"]
                for label, rate in best.items():
                    rows.append((size_text, name, label, rate, rate / base))
            rows.append((size_text, "cache fill", "decode + shrink + write JPEG", fill_rate, None))
    print(
        f"Data pipeline, {args.images} generated JPEGs per size, one process "
        f"({platform.machine()}, {os.cpu_count()} CPUs), 1 torch thread as in a DataLoader worker\n"
    )
    print("| image size | pipeline | decoding | images / CPU-second | vs full decode |")
    print("|---|---|---|---:|---:|")
    for size_text, name, label, rate, ratio in rows:
        speedup = "-" if ratio is None else f"{ratio:.2f}x"
        print(f"| {size_text} | {name} | {label} | {rate:,.0f} | {speedup} |")


if __name__ == "__main__":
    main()
