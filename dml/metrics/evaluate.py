"""Pick and run the metrics a dataset config asks for (its `metrics: {ks: [...], nmi: true}` block)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dml.metrics.clustering import clustering_metrics
from dml.metrics.inputs import to_numpy
from dml.metrics.retrieval import retrieval_metrics


def evaluate_embeddings(
    query,
    query_labels,
    gallery=None,
    gallery_labels=None,
    ks: Iterable[int] = (1, 2, 4, 8),
    nmi: bool = True,
    retrieval: bool = True,
) -> dict[str, float | int]:
    """Retrieval metrics (for `ks`) and, when `nmi`, clustering metrics of one evaluation set.

    Call as `evaluate_embeddings(q, ql, g, gl, **cfg.dataset.metrics)`. With a gallery, the
    clustering runs on query and gallery together (all the eval set's embeddings).
    """
    for name, flag in (("nmi", nmi), ("retrieval", retrieval)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"metrics.{name} must be true or false, got {flag!r}")
    out: dict[str, float | int] = {}
    if retrieval:
        out.update(retrieval_metrics(query, query_labels, gallery, gallery_labels, ks=ks))
    if nmi:
        if gallery is None:
            out.update(clustering_metrics(query, query_labels))
        else:
            emb = np.concatenate([to_numpy(query), to_numpy(gallery)])
            labels = np.concatenate([to_numpy(query_labels), to_numpy(gallery_labels)])
            out.update(clustering_metrics(emb, labels))
    return out
