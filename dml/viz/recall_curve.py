"""Recall@K against K on a log axis, from the one retrieval metric of dml.metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from dml.metrics import retrieval_metrics
from dml.viz.figures import new_figure

SIZE = (6.0, 4.0)


def curve_ks(gallery_size: int, max_k: int = 1024, extra: Iterable[int] = ()) -> list[int]:
    """Powers of two up to min(max_k, gallery_size), plus the `extra` Ks that fit."""
    top = max(1, min(int(max_k), int(gallery_size)))
    ks = {2**i for i in range(int(np.log2(top)) + 1)} | {
        int(k) for k in extra if 1 <= int(k) <= top
    }
    return sorted(ks)


def recall_curve(
    splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    max_k: int = 1024,
    extra_ks: Iterable[int] = (),
) -> dict[int, float]:
    """{K: Recall@K} of `{"test": (emb, labels)}` (self-retrieval) or `{"query": .., "gallery": ..}`."""
    if "query" in splits:
        q, ql = splits["query"]
        g, gl = splits["gallery"]
        ks = curve_ks(len(g), max_k, extra_ks)
        m = retrieval_metrics(q, ql, g, gl, ks=ks)
    else:
        e, lab = splits["test"]
        ks = curve_ks(len(e) - 1, max_k, extra_ks)
        m = retrieval_metrics(e, lab, ks=ks)
    return {k: float(m[f"recall@{k}"]) for k in ks}


def recall_curve_figure(
    curve: Mapping[int, float], marked: Iterable[int] = (), title: str = ""
) -> Figure:
    """Recall@K against K (log scale); the `marked` Ks (the dataset's reported ones) are labelled."""
    ks = np.array(sorted(curve))
    r = np.array([curve[k] for k in ks])
    fig = new_figure(*SIZE)
    ax = fig.add_subplot()
    ax.plot(ks, r, marker="o", markersize=3, color="#3b6fb6")
    shown = [k for k in marked if k in curve]
    if shown:
        ax.plot(shown, [curve[k] for k in shown], "o", color="#d73027", markersize=5)
        text = "\n".join(f"Recall@{k} = {curve[k]:.3f}" for k in shown)
        ax.text(
            0.98,
            0.04,
            text,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "#cccccc"},
        )
    if len(ks) > 1:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_ylim(min(0.0, float(r.min())), 1.02)
    ax.grid(True, alpha=0.3)
    head = f"{title}: " if title else ""
    fig.suptitle(f"{head}Recall@K", fontsize=10)
    return fig
