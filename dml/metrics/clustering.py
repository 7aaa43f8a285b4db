"""Clustering metrics: a seeded k-means++ with K = number of classes, then NMI and pairwise F1.

Both scores come from the class x cluster contingency table, so they cost O(N + cells), not O(N^2).
"""

from __future__ import annotations

import numpy as np

from dml.metrics.inputs import as_embeddings, as_labels, encode_labels

# Greedy k-means++ (scikit-learn's seeding: the best of 2 + ln(k) D^2-sampled candidates per
# centre) run `restarts` times, the lowest k-means objective kept: as many restarts as fit
# SEEDING_BUDGET multiply-adds (a seeding costs about n * k * d * trials), at most MAX_RESTARTS
# (scikit-learn's n_init). Small and medium sets get all 10 restarts. A problem where even one
# greedy seeding is over budget (SOP's test set: 60k x 512 around 11k classes) gets one run of
# plain k-means++ (one candidate per centre) sampled on the data's top SEEDING_DIM principal
# components, which fit in the CPU cache: exact seeding there cost 5x the whole old k-means.
# With thousands of clusters a single run is enough: they average out the odd bad merge.
MAX_RESTARTS = 10
SEEDING_BUDGET = 2e10
SEEDING_DIM = 64
# Lloyd iterations at most (as before); faiss >= 1.14 stops earlier once the objective stops falling
MAX_ITERATIONS = 20
# n * k * d up to which the k-means runs on one thread (see kmeans_assign)
ONE_THREAD_SIZE = 1e8


def greedy_trials(num_clusters: int) -> int:
    """Candidates per centre in greedy k-means++ (Arthur & Vassilvitskii's 2 + ln k)."""
    return 2 + int(np.log(num_clusters))


def default_restarts(num_points: int, num_clusters: int, dim: int) -> int:
    """Greedy k-means++ restarts clustering_metrics runs for a problem this size; 0 means one
    plain k-means++ run seeded on principal components (one greedy seeding would exceed
    SEEDING_BUDGET)."""
    cost = num_points * num_clusters * dim * greedy_trials(num_clusters)
    return int(min(MAX_RESTARTS, SEEDING_BUDGET // cost))


def kmeans_pp(
    x: np.ndarray, num_clusters: int, rng: np.random.Generator, trials: int | None = None
) -> np.ndarray:
    """Row indices of the initial centres by k-means++: each centre is, of `trials` candidates
    drawn with probability proportional to the squared distance to the nearest centre so far, the
    one that lowers the summed squared distances most (greedy k-means++; default greedy_trials(k),
    1 = plain k-means++). float32 throughout (the squared-norm expansion), which keeps it fast;
    exact ties go to the first candidate."""
    n = len(x)
    trials = greedy_trials(num_clusters) if trials is None else trials
    sq = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(num_clusters, dtype=np.int64)
    chosen[0] = rng.integers(n)
    nearest = np.maximum(sq - 2 * (x @ x[chosen[0]]) + sq[chosen[0]], 0)
    for i in range(1, num_clusters):
        cumulative = np.cumsum(nearest, dtype=np.float64)
        if cumulative[-1] <= 0:  # every point sits on a centre: any row will do
            candidates = rng.integers(n, size=trials)
        else:
            draws = rng.random(trials) * cumulative[-1]
            candidates = np.minimum(np.searchsorted(cumulative, draws, side="right"), n - 1)
        # [trials, n] squared distances (rows contiguous for the sums), in place
        dist = x[candidates] @ x.T
        dist *= -2
        dist += sq
        dist += sq[candidates][:, None]
        np.maximum(dist, 0, out=dist)
        np.minimum(dist, nearest, out=dist)
        best = int(np.argmin(dist.sum(axis=1, dtype=np.float64))) if trials > 1 else 0
        chosen[i] = candidates[best]
        nearest = dist[best]
    return chosen


def principal_components(x: np.ndarray, dims: int) -> np.ndarray:
    """x [N, D] centred and projected on its top `dims` principal axes, float32 [N, dims].

    From the smaller of the two Gram matrices: the D x D covariance when D <= N, else the N x N
    inner products, whose eigenvectors scaled by the singular values are the same projections (up
    to each axis' sign, which no distance sees). Raw 64 px pixels (D = 12,288, N = 4,371) took
    167 s through the covariance, almost all of it the eigendecomposition."""
    centred = x - x.mean(axis=0, dtype=np.float64).astype(np.float32)
    n, d = centred.shape
    if d <= n:
        _, axes = np.linalg.eigh((centred.T @ centred).astype(np.float64))
        return centred @ np.ascontiguousarray(axes[:, ::-1][:, :dims], dtype=np.float32)
    values, vectors = np.linalg.eigh((centred @ centred.T).astype(np.float64))
    values, vectors = values[::-1][:dims], vectors[:, ::-1][:, :dims]
    return (vectors * np.sqrt(np.maximum(values, 0))).astype(np.float32)


def kmeans_assign(
    x: np.ndarray,
    num_clusters: int,
    seed: int = 0,
    restarts: int | None = None,
    niter: int = MAX_ITERATIONS,
) -> np.ndarray:
    """Cluster id of each row of float32 x [N, D] after k-means (deterministic for a seed).

    `restarts` greedy k-means++ seedings (default: default_restarts), each followed by faiss'
    Lloyd on all points (`niter` iterations at most); the run with the lowest objective is kept. restarts=0: one run, seeded by plain k-means++ on the top
    SEEDING_DIM principal components. Random-row seeding, used before, merged well separated
    classes in most runs.
    """
    import faiss
    from threadpoolctl import threadpool_limits

    n, d = x.shape
    if restarts is None:
        restarts = default_restarts(n, num_clusters, d)
    rng = np.random.default_rng(seed)
    options = dict(
        niter=niter,
        seed=seed,
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=-(-n // num_clusters),  # all points: no subsampling
    )
    best_objective, best_assign = np.inf, None
    # a small problem runs on one thread: OpenMP and BLAS threads gain nothing there and their
    # synchronisation cost 25x the time on a busy 2-core machine (0.47 s vs 12.6 s, N=2000, K=50)
    with threadpool_limits(limits=1 if n * num_clusters * d <= ONE_THREAD_SIZE else None):
        for _ in range(max(restarts, 1)):
            if restarts == 0:
                z = principal_components(x, SEEDING_DIM) if d > SEEDING_DIM else x
                trials = 1
            else:
                z, trials = x, None
            # the seeding's products are thin ([trials, D] x [D, N]): one BLAS thread
            with threadpool_limits(limits=1, user_api="blas"):
                centroids = x[kmeans_pp(z, num_clusters, rng, trials)]
            km = faiss.Kmeans(d, num_clusters, **options)
            km.train(x, init_centroids=centroids)
            dist, assign = km.index.search(x, 1)
            objective = float(dist.sum(dtype=np.float64))
            if objective < best_objective:
                best_objective, best_assign = objective, assign[:, 0]
    return best_assign.astype(np.int64)


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
    embeddings, labels, seed: int = 0, restarts: int | None = None
) -> dict[str, float]:
    """NMI and pairwise F1 of a k-means clustering (K = number of classes) of the embeddings.

    The k-means is kmeans_assign's: seeded by `seed`, the best of `restarts` greedy k-means++ runs
    (default: as many as default_restarts allows for this size).
    """
    x = as_embeddings(embeddings, "embeddings")
    raw = as_labels(labels, "labels", len(x))
    y = encode_labels(raw)[0]
    num_classes = int(y.max()) + 1
    if num_classes < 2:
        raise ValueError(
            f"labels hold a single class ({raw[:1].tolist()[0]!r}): "
            "clustering metrics need at least two classes"
        )
    clusters = kmeans_assign(x, num_classes, seed=seed, restarts=restarts)
    return {"nmi": nmi_score(y, clusters), "f1": pairwise_f1(y, clusters)}
