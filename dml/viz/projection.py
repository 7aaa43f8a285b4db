"""2-D projection of embeddings coloured by class: t-SNE (scikit-learn), UMAP (when installed) or PCA.

Kept cheap: at most `max_points` points of at most `max_classes` classes (seeded choice), so a
projection of an SOP-sized eval set costs what one of a few thousand points does.
"""

from __future__ import annotations

import importlib.util
import inspect

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

from dml.viz.figures import new_figure

METHODS = ("tsne", "umap", "pca", "auto")
NAMES = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}
SIZE = (7.0, 6.0)


def umap_available() -> bool:
    return importlib.util.find_spec("umap") is not None


def select_points(
    labels: np.ndarray, max_points: int, max_classes: int, seed: int = 0
) -> np.ndarray:
    """Sorted indices of at most `max_points` items drawn from at most `max_classes` classes (seeded)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    if len(classes) > max_classes:
        classes = rng.choice(classes, size=max_classes, replace=False)
    idx = np.flatnonzero(np.isin(labels, classes))
    if len(idx) > max_points:
        idx = rng.choice(idx, size=max_points, replace=False)
    return np.sort(idx)


def project_2d(
    embeddings: np.ndarray,
    method: str = "tsne",
    seed: int = 0,
    tsne_iterations: int = 500,
    threads: int | None = 1,
) -> np.ndarray:
    """[N, 2] coordinates of [N, D] embeddings. method: tsne | umap | pca | auto (umap if installed, else tsne).

    threads: OpenMP/BLAS threads for the projection (None: the library default). One by default:
    on a few thousand points extra threads gain little, and on a busy machine OpenMP's waiting
    threads made t-SNE several times slower in our measurements.
    """
    if method not in METHODS:
        raise ValueError(f"projection method {method!r} is not one of {METHODS}")
    x = np.asarray(embeddings, dtype=np.float32)
    if len(x) < 3:
        raise ValueError(f"a 2-D projection needs at least 3 points, got {len(x)}")
    if method == "auto":
        method = "umap" if umap_available() else "tsne"
    with threadpool_limits(limits=threads):
        return _project(x, method, seed, tsne_iterations)


def _project(x: np.ndarray, method: str, seed: int, tsne_iterations: int) -> np.ndarray:
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "umap":
        if not umap_available():
            raise ValueError(
                "projection method 'umap' needs the umap-learn package: pip install umap-learn (or use tsne)"
            )
        import umap

        return umap.UMAP(
            n_components=2, random_state=seed, n_neighbors=min(15, len(x) - 1)
        ).fit_transform(x)
    from sklearn.manifold import TSNE

    # scikit-learn renamed n_iter to max_iter in 1.5
    iters = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
    tsne = TSNE(
        n_components=2,
        perplexity=float(min(30.0, (len(x) - 1) / 3)),
        init="pca",
        learning_rate="auto",
        random_state=seed,
        **{iters: max(250, int(tsne_iterations))},
    )
    return tsne.fit_transform(x)


def projection_figure(
    embeddings: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    method: str = "tsne",
    max_points: int = 2000,
    max_classes: int = 20,
    seed: int = 0,
    title: str = "",
    tsne_iterations: int = 500,
    threads: int | None = 1,
) -> Figure:
    """Scatter of the 2-D projection of (a seeded subsample of) the embeddings, one colour per class."""
    emb = torch.as_tensor(embeddings).float().numpy()
    labels = np.asarray(labels)
    idx = select_points(labels, max_points, max_classes, seed)
    xy = project_2d(
        emb[idx], method=method, seed=seed, tsne_iterations=tsne_iterations, threads=threads
    )
    lab = labels[idx]
    classes = np.unique(lab)
    used = method if method != "auto" else ("umap" if umap_available() else "tsne")
    fig = new_figure(*SIZE)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for i, c in enumerate(classes):
        pts = xy[lab == c]
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=8,
            alpha=0.75,
            color=cmap(i % cmap.N),
            label=str(c),
            linewidths=0,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    if len(classes) <= 20:
        ax.legend(
            title="class",
            fontsize=7,
            title_fontsize=8,
            markerscale=2,
            loc="best",
            ncols=1 + len(classes) // 11,
        )
    head = f"{title}: " if title else ""
    fig.suptitle(
        f"{head}{NAMES[used]} of {len(idx):,} of {len(labels):,} embeddings, {len(classes)} classes",
        fontsize=10,
    )
    return fig
