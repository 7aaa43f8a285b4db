"""The pictures of one evaluation: retrieval grid, 2-D projection, pair distances, Recall@K curve.

`save_eval_plots` takes the embeddings and labels of the eval split(s) — `{"test": (emb, labels)}`
or `{"query": .., "gallery": ..}`, as dml.training.evaluation.score does — and the datasets they
came from (for the grid's images), and writes one PNG per picture into a folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from dml.viz.figures import save_png
from dml.viz.images import raw_image
from dml.viz.pair_distances import pair_distance_counts, pair_distance_figure
from dml.viz.projection import projection_figure
from dml.viz.recall_curve import recall_curve, recall_curve_figure
from dml.viz.retrieval_grid import retrieval_grid_figure

log = logging.getLogger("dml")

EVAL_PLOTS = ("retrieval_grid", "projection", "pair_distances", "recall_curve")

Splits = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class EvalPlotOptions:
    """How the eval pictures are drawn (the `callbacks.eval_plots` config mirrors these fields)."""

    plots: tuple[str, ...] = EVAL_PLOTS
    n_queries: int = 8
    top_k: int = 5
    projection: str = "tsne"
    max_points: int = 2000
    max_classes: int = 20
    tsne_iterations: int = 500
    projection_threads: int | None = 1
    max_k: int = 1024
    marked_ks: tuple[int, ...] = (1, 2, 4, 8)
    seed: int = 0
    title: str = ""

    def __post_init__(self) -> None:
        self.plots = tuple(self.plots)
        unknown = set(self.plots) - set(EVAL_PLOTS)
        if unknown:
            raise ValueError(
                f"unknown eval plot(s) {sorted(unknown)}; choose from {list(EVAL_PLOTS)}"
            )
        self.marked_ks = tuple(int(k) for k in self.marked_ks)


def _split_pair(
    splits: Splits,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
    """((query emb, labels), (gallery emb, labels) or None for self-retrieval)."""
    if "query" in splits:
        return splits["query"], splits["gallery"]
    if "test" in splits:
        return splits["test"], None
    raise ValueError(f"eval splits must be 'test' or 'query' + 'gallery', got {sorted(splits)}")


def _image_reader(dataset: Any) -> Callable[[int], Any]:
    return lambda i: raw_image(dataset, i)


def eval_figure_makers(
    splits: Splits, datasets: Mapping[str, Any] | None, options: EvalPlotOptions
) -> dict[str, Callable[[], Figure]]:
    """{name: function drawing that picture} for each of `options.plots` (the grid only with `datasets`)."""
    (q, ql), gallery = _split_pair(splits)
    g, gl = gallery if gallery is not None else (None, None)
    o = options

    def grid() -> Figure:
        qset = datasets["query" if gallery is not None else "test"]
        gset = datasets.get("gallery") if gallery is not None else None
        return retrieval_grid_figure(
            q,
            ql,
            _image_reader(qset),
            g,
            gl,
            None if gset is None else _image_reader(gset),
            n_queries=o.n_queries,
            top_k=o.top_k,
            seed=o.seed,
            title=o.title,
        )

    def projection() -> Figure:
        emb = q if g is None else torch.cat([q, g])
        lab = ql if gl is None else torch.cat([torch.as_tensor(ql), torch.as_tensor(gl)])
        return projection_figure(
            emb,
            lab,
            method=o.projection,
            max_points=o.max_points,
            max_classes=o.max_classes,
            seed=o.seed,
            title=o.title,
            tsne_iterations=o.tsne_iterations,
            threads=o.projection_threads,
        )

    def pair_distances() -> Figure:
        counts = pair_distance_counts(q, ql, g, gl, max_points=o.max_points, seed=o.seed)
        return pair_distance_figure(counts, title=o.title)

    def curve() -> Figure:
        return recall_curve_figure(
            recall_curve(splits, max_k=o.max_k, extra_ks=o.marked_ks),
            marked=o.marked_ks,
            title=o.title,
        )

    makers = {
        "retrieval_grid": grid,
        "projection": projection,
        "pair_distances": pair_distances,
        "recall_curve": curve,
    }
    if not datasets and "retrieval_grid" in o.plots:
        log.info("eval plots: no datasets given, so no retrieval grid (it needs the images)")
    return {n: makers[n] for n in o.plots if n != "retrieval_grid" or datasets}


def save_eval_plots(
    splits: Splits,
    out_dir: str | os.PathLike,
    datasets: Mapping[str, Any] | None = None,
    options: EvalPlotOptions | None = None,
    strict: bool = False,
) -> dict[str, Path]:
    """Write `<out_dir>/<name>.png` for each eval picture; returns {name: path}.

    strict=False: a picture that fails is logged as a warning and skipped, so that plotting can
    never cost a finished training run its results; strict=True re-raises (tests, scripts).
    """
    options = options or EvalPlotOptions()
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for name, make in eval_figure_makers(splits, datasets, options).items():
        try:
            written[name] = save_png(make(), out / f"{name}.png")
        except Exception as err:  # noqa: BLE001 - one bad picture must not stop the others
            if strict:
                raise
            log.warning("eval plots: %s failed (%s: %s); skipped", name, type(err).__name__, err)
    return written
