"""Clustering metrics: one seeded faiss k-means with K = number of classes, then NMI and pairwise F1.

Both scores come from the class x cluster contingency table, so they cost O(N + cells), not O(N^2).
"""

from __future__ import annotations

import numpy as np

from dml.metrics.inputs import as_embeddings, as_labels, encode_labels


def kmeans_assign(
    x: np.ndarray, num_clusters: int, seed: int = 0, niter: int = 20, nredo: int = 1
) -> np.ndarray:
    """Cluster id of each row of float32 x [N, D] after faiss k-means (deterministic for a seed).

    Initial centroids are random rows (faiss' default); nredo > 1 keeps the run with the lowest
    k-means objective.
    """
    import faiss

    km = faiss.Kmeans(
        x.shape[1],
        num_clusters,
        niter=niter,
        nredo=nredo,
        seed=seed,
        verbose=False,
        min_points_per_centroid=1,
    )
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def contingency(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Counts n_ij of the non-zero cells of the class x cluster table, as a flat array."""
    _, cells = np.unique(
        labels.astype(np.int64) * (int(clusters.max()) + 1) + clusters, return_counts=True
    )
    return cells


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def nmi_score(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Normalised mutual information with the arithmetic mean of the entropies (sklearn's default)."""
    n = len(labels)
    cells = contingency(labels, clusters)
    a = np.bincount(labels)
    b = np.bincount(clusters)
    h_labels, h_clusters = _entropy(a, n), _entropy(b, n)
    if h_labels == 0.0 and h_clusters == 0.0:
        return 1.0  # one class and one cluster: identical partitions
    # MI = sum_ij p_ij log(p_ij / (p_i p_j)) = H(labels) + H(clusters) - H(joint)
    mi = max(h_labels + h_clusters - _entropy(cells, n), 0.0)
    return float(mi / ((h_labels + h_clusters) / 2))


def pairwise_f1(labels: np.ndarray, clusters: np.ndarray) -> float:
    """F1 of "same cluster" as a predictor of "same class" over all unordered pairs of items."""

    def pairs(c: np.ndarray) -> float:
        c = c.astype(np.float64)
        return float((c * (c - 1) / 2).sum())

    tp = pairs(contingency(labels, clusters))
    predicted = pairs(np.bincount(clusters))
    actual = pairs(np.bincount(labels))
    if tp == 0.0:
        return 0.0
    precision, recall = tp / predicted, tp / actual
    return float(2 * precision * recall / (precision + recall))


def clustering_metrics(
    embeddings, labels, seed: int = 0, niter: int = 20, nredo: int = 1
) -> dict[str, float]:
    """NMI and pairwise F1 of a k-means clustering (K = number of classes) of the embeddings."""
    x = as_embeddings(embeddings, "embeddings")
    y = encode_labels(as_labels(labels, "labels", len(x)))[0]
    num_classes = int(y.max()) + 1
    if num_classes < 2:
        raise ValueError(
            f"labels hold a single class ({as_labels(labels, 'labels', len(x))[0]!r}): "
            "clustering metrics need at least two classes"
        )
    clusters = kmeans_assign(x, num_classes, seed=seed, niter=niter, nredo=nredo)
    return {"nmi": nmi_score(y, clusters), "f1": pairwise_f1(y, clusters)}
