"""Retrieval grid: a few queries, each with its top-k gallery results, right ones framed green, wrong red.

The grid is composed as one picture (thumbnails pasted pixel for pixel) and drawn on a single
axes, so it stays cheap to render however many cells it has.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from dml.distances import pairwise_distance
from dml.metrics import nearest_neighbors
from dml.viz.figures import DPI, new_figure

RIGHT, WRONG, QUERY = (26, 152, 80), (215, 48, 39), (59, 111, 182)
THUMB = 88  # px of a thumbnail's longer side
BORDER = 5  # px of the coloured frame
LABEL = 30  # px of text above each cell
CELL = THUMB + 2 * BORDER + 12  # px between cell origins
GAP = 16  # px between the query column and the results
MARGIN = 10
HEADER = 36  # px of the title line


def grid_pixels(n_queries: int, top_k: int) -> tuple[int, int]:
    """(width, height) in pixels of a grid of n_queries rows and 1 + top_k columns."""
    return 2 * MARGIN + (1 + top_k) * CELL + GAP, HEADER + n_queries * (CELL + LABEL) + MARGIN


def choose_queries(
    query_labels: np.ndarray, gallery_labels: np.ndarray | None, n: int, seed: int = 0
) -> np.ndarray:
    """Up to `n` query indices (seeded, sorted), among queries with at least one same-class gallery item."""
    q = np.asarray(query_labels)
    if gallery_labels is None:  # self-retrieval: the class needs a second item
        values, counts = np.unique(q, return_counts=True)
        ok = np.isin(q, values[counts > 1])
    else:
        ok = np.isin(q, np.asarray(gallery_labels))
    candidates = np.flatnonzero(ok)
    if len(candidates) == 0:
        raise ValueError(
            "no query has a same-class item in the gallery: nothing to show in a retrieval grid"
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))


def top_k_results(
    query: torch.Tensor, query_index: np.ndarray, gallery: torch.Tensor | None, k: int
) -> np.ndarray:
    """Indices [len(query_index), k] of the nearest gallery items; in self-retrieval (gallery None)
    the query's own item is left out."""
    q = query[torch.as_tensor(query_index)]
    if gallery is not None:
        return nearest_neighbors(q, k, gallery=gallery)[1]
    _, idx = nearest_neighbors(q, min(k + 1, len(query)), gallery=query)
    return np.stack([row[row != own][:k] for row, own in zip(idx, query_index, strict=True)])


def _fit(image: Image.Image) -> np.ndarray:
    """The image scaled so its longer side is THUMB px (nearest-neighbour when enlarging), centred on grey."""
    w, h = image.size
    scale = THUMB / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = image.convert("RGB").resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)
    tile = np.full((THUMB, THUMB, 3), 230, dtype=np.uint8)
    x0, y0 = (THUMB - size[0]) // 2, (THUMB - size[1]) // 2
    tile[y0 : y0 + size[1], x0 : x0 + size[0]] = np.asarray(image)
    return tile


def retrieval_grid_figure(
    query: torch.Tensor,
    query_labels: torch.Tensor | np.ndarray,
    query_image: Callable[[int], Image.Image],
    gallery: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | np.ndarray | None = None,
    gallery_image: Callable[[int], Image.Image] | None = None,
    n_queries: int = 8,
    top_k: int = 5,
    seed: int = 0,
    title: str = "",
) -> Figure:
    """Rows of (query, its top_k results); gallery=None searches the query set without the query itself.

    `query_image(i)` / `gallery_image(j)` return the picture of item i / j (see dml.viz.images.raw_image).
    Each result is labelled with its rank, class and distance, and framed green (same class) or red.
    The PNG is `grid_pixels(n_queries, top_k)` in size (fewer rows when fewer queries qualify).
    """
    if top_k < 1 or n_queries < 1:
        raise ValueError(f"need n_queries >= 1 and top_k >= 1, got {n_queries} and {top_k}")
    query = torch.as_tensor(query).float()
    ql = np.asarray(query_labels)
    self_mode = gallery is None
    g = query if self_mode else torch.as_tensor(gallery).float()
    gl = ql if self_mode else np.asarray(gallery_labels)
    g_image = query_image if self_mode else gallery_image
    if g_image is None:
        raise ValueError("gallery_image is needed with a separate gallery")
    k = min(top_k, len(g) - int(self_mode))
    qidx = choose_queries(ql, None if self_mode else gl, n_queries, seed)
    nbrs = top_k_results(query, qidx, None if self_mode else g, k)

    width, height = grid_pixels(len(qidx), top_k)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    labels: list[tuple[float, float, str, tuple[int, int, int]]] = []
    hits = 0

    def cell(
        row: int, col: int, image: Image.Image, color: tuple[int, int, int], text: str
    ) -> None:
        x = MARGIN + col * CELL + (GAP if col > 0 else 0)
        y = HEADER + row * (CELL + LABEL) + LABEL
        side = THUMB + 2 * BORDER
        canvas[y : y + side, x : x + side] = color
        canvas[y + BORDER : y + BORDER + THUMB, x + BORDER : x + BORDER + THUMB] = _fit(image)
        labels.append((x + side / 2, y - 3, text, color))

    for r, (qi, row) in enumerate(zip(qidx, nbrs, strict=True)):
        cell(r, 0, query_image(int(qi)), QUERY, f"query #{qi}\nclass {ql[qi]}")
        dist = pairwise_distance(query[int(qi)][None], g[torch.as_tensor(row)])[0].numpy()
        for c, j in enumerate(row):
            right = gl[j] == ql[qi]
            hits += int(right)
            cell(
                r,
                c + 1,
                g_image(int(j)),
                RIGHT if right else WRONG,
                f"{c + 1}: class {gl[j]}\nd={dist[c]:.3f}",
            )

    fig = new_figure(width / DPI, height / DPI, layout=None)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for x, y, text, color in labels:
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="bottom",
            fontsize=7,
            color=tuple(v / 255 for v in color),
            linespacing=1.1,
        )
    head = f"{title}: " if title else ""
    ax.text(
        width / 2,
        HEADER / 2,
        f"{head}top-{k} retrieval, {hits}/{len(qidx) * k} right (green) / wrong (red)",
        ha="center",
        va="center",
        fontsize=10,
    )
    return fig
