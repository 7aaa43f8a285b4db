"""Retrieval metrics: Recall@K, MAP@R and R-Precision (Musgrave et al. 2020), streamed over kNN chunks.

R of a query is the number of same-class gallery items (its own item excluded in self mode);
queries with R = 0 are left out of every metric and counted in "queries_without_positive".
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dml.metrics.inputs import as_embeddings, as_labels, encode_labels, unit_rows
from dml.metrics.knn import first_match_rank, iter_knn_arrays

# Recall@K for K up to this comes from the kNN lists; deeper K from first_match_rank.
KNN_DEPTH_CAP = 64


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """The K list as sorted unique positive ints, or a clear error."""
    try:
        out = tuple(sorted({int(k) for k in ks}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"ks must be a list of positive integers, got {ks!r}") from e
    if not out or out[0] < 1:
        raise ValueError(f"ks must be a non-empty list of positive integers, got {ks!r}")
    return out


def chunk_scores(hits: np.ndarray, r: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query scores from the relevance of ranked neighbours hits [c, k] and R [c] (1 <= R <= k).

    R-Precision: hits in the first R / R; MAP@R: sum over ranks i <= R of precision@i at the
    hits, divided by R; "first": 0-based rank of the first hit (k when none in the list).
    """
    width = hits.shape[1]
    ranks = np.arange(1, width + 1)
    hits_r = hits & (ranks[None, :] <= r[:, None])
    precision_at_i = np.cumsum(hits_r, axis=1) / ranks
    return {
        "r_precision": hits_r.sum(1) / r,
        "map@r": np.where(hits_r, precision_at_i, 0.0).sum(1) / r,
        "first": np.where(hits.any(1), hits.argmax(1), width),
    }


def retrieval_metrics(
    query,
    query_labels,
    gallery=None,
    gallery_labels=None,
    ks: Iterable[int] = (1, 2, 4, 8),
    backend: str = "auto",
    chunk_size: int | None = None,
) -> dict[str, float | int]:
    """Recall@K for each K, MAP@R and R-Precision of cosine-similarity retrieval.

    gallery=None: the query set is its own gallery and each query's own item is left out.
    Returns fractions in [0, 1] plus "num_queries" (scored) and "queries_without_positive".
    K larger than the gallery counts every query with a positive as a hit.
    """
    ks = check_ks(ks)
    q = as_embeddings(query, "query")
    ql = as_labels(query_labels, "query_labels", len(q))
    self_mode = gallery is None
    if self_mode:
        if gallery_labels is not None:
            raise ValueError(
                "gallery_labels given without gallery: pass both, or neither for self-retrieval"
            )
        g, gl = None, None
        ql_codes = gl_codes = encode_labels(ql)[0]
    else:
        g = as_embeddings(gallery, "gallery", dim=q.shape[1])
        gl = as_labels(gallery_labels, "gallery_labels", len(g))
        ql_codes, gl_codes = encode_labels(ql, gl)
    n_gallery = len(gl_codes)
    if len(np.unique(gl_codes)) < 2:
        raise ValueError(
            f"the gallery has a single class (label {(gl if gl is not None else ql)[:1].tolist()[0]!r}): "
            "retrieval metrics need at least two classes to mean anything"
        )

    counts = np.bincount(gl_codes, minlength=int(max(ql_codes.max(), gl_codes.max())) + 1)
    r_all = counts[ql_codes] - int(self_mode)
    valid = r_all > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise ValueError(
            "no query has a same-class item in the gallery: check that query and gallery labels "
            "use the same class ids"
        )

    q = unit_rows(q, "query")
    g = None if self_mode else unit_rows(g, "gallery")
    available = n_gallery - int(self_mode)
    shallow = [k for k in ks if k <= KNN_DEPTH_CAP]
    depth = min(max(int(r_all[valid].max()), *shallow, 1), available)

    per_query = {"map@r": np.zeros(len(q)), "r_precision": np.zeros(len(q))}
    first = np.full(len(q), -1, dtype=np.int64)  # 0-based rank of the first same-class item
    for start, _, idx in iter_knn_arrays(q, depth, g, backend=backend, chunk_size=chunk_size):
        rows = np.arange(start, start + len(idx))[valid[start : start + len(idx)]]
        hits = gl_codes[idx[rows - start]] == ql_codes[rows, None]
        scores = chunk_scores(hits, r_all[rows])
        for name, values in per_query.items():
            values[rows] = scores[name]
        first[rows] = scores["first"]
    deep = np.flatnonzero(valid & (first >= depth))
    if len(deep) and ks[-1] > depth:
        # Recall@K deeper than the lists: count what ranks before each such query's best match
        ranks = first_match_rank(q, ql_codes, deep, g, None if self_mode else gl_codes)
        first[deep] = np.maximum(ranks, depth)
    out: dict[str, float | int] = {}
    for k in ks:
        out[f"recall@{k}"] = float((first[valid] < k).sum() / n_valid)
    for name, values in per_query.items():  # summed once, in query order: same bits for any tiling
        out[name] = float(values[valid].sum() / n_valid)
    out["num_queries"] = n_valid
    out["queries_without_positive"] = int(len(q) - n_valid)
    return out
