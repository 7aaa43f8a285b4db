"""Brute-force NumPy references and test data for the metrics tests (float64, one query at a time)."""

from __future__ import annotations

import numpy as np
import pytest


def reference_ranking(q: np.ndarray, g: np.ndarray | None) -> list[np.ndarray]:
    """Per query, all gallery indices by float64 cosine similarity desc, then index asc (self left out)."""
    self_mode = g is None
    g = q if self_mode else g
    sims = q.astype(np.float64) @ g.astype(np.float64).T
    out = []
    for i, row in enumerate(sims):
        cand = np.array([j for j in range(len(g)) if not (self_mode and j == i)])
        order = np.lexsort((cand, -row[cand]))  # last key is primary
        out.append(cand[order])
    return out


def reference_retrieval(q, ql, g=None, gl=None, ks=(1, 2, 4, 8)) -> dict:
    """Recall@K, MAP@R, R-Precision by the textbook definitions, with explicit loops."""
    gl = ql if g is None else gl
    rec = {k: [] for k in ks}
    maps, rps, skipped = [], [], 0
    for i, order in enumerate(reference_ranking(q, g)):
        rel = gl[order] == ql[i]
        r = int(rel.sum())
        if r == 0:
            skipped += 1
            continue
        for k in ks:
            rec[k].append(bool(rel[:k].any()))
        rps.append(rel[:r].sum() / r)
        ap = 0.0
        hits = 0
        for rank in range(r):
            if rel[rank]:
                hits += 1
                ap += hits / (rank + 1)
        maps.append(ap / r)
    out = {f"recall@{k}": float(np.mean(v)) for k, v in rec.items()}
    out.update({"map@r": float(np.mean(maps)), "r_precision": float(np.mean(rps))})
    out.update({"num_queries": len(maps), "queries_without_positive": skipped})
    return out


def clustered(
    n: int, dim: int, classes: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around random class centres (float32) and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    labels = rng.integers(0, classes, n)
    x = centres[labels] + noise * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def grid_with_ties(n: int, classes: int, seed: int, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors with entries +-1/4 (dim 16): every similarity is a multiple of 1/8, exact in
    float32, so ties are everywhere; plus exact duplicate rows, some across classes."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-0.25, 0.25], size=(n, dim)).astype(np.float32)
    # few distinct vectors so that many rows are exact duplicates
    x[n // 2 :] = x[rng.integers(0, n // 2, n - n // 2)]
    labels = rng.integers(0, classes, n)
    return x, labels


@pytest.fixture
def ref():
    """The brute-force reference functions."""
    return type(
        "Ref",
        (),
        {
            "ranking": staticmethod(reference_ranking),
            "retrieval": staticmethod(reference_retrieval),
            "clustered": staticmethod(clustered),
            "grid": staticmethod(grid_with_ties),
        },
    )
