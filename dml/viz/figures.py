"""Figures drawn off-screen (matplotlib's Agg canvas, no pyplot state) and saved atomically as PNG.

Sizes are exact: a figure of `figsize` inches at `dpi` is saved as figsize * dpi pixels (no tight
bounding box), so callers and tests know the size of every picture in advance.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dml.io import atomic_write_bytes

DPI = 100


def new_figure(
    width: float, height: float, dpi: int = DPI, layout: str | None = "constrained"
) -> Figure:
    """A figure of width x height inches on its own Agg canvas (constrained layout unless layout=None)."""
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_pixels(fig: Figure) -> tuple[int, int]:
    """(width, height) in pixels of the PNG `save_png` writes for `fig`."""
    w, h = fig.get_size_inches()
    return round(w * fig.dpi), round(h * fig.dpi)


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Render `fig` to `path` as PNG (temp file + rename: never a half-written picture)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
