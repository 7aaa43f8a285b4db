"""Retrieval metrics against their definitions where the kNN lists are too short (K beyond the
kNN depth cap, answered by the full ranking), and the errors of degenerate label sets, which must
name the real problem and the offending label."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dml.metrics import retrieval_metrics
from dml.metrics.retrieval import KNN_DEPTH_CAP
from tests.metrics.conftest import reference_retrieval


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_gallery=st.integers(KNN_DEPTH_CAP + 6, KNN_DEPTH_CAP + 40),
    self_mode=st.booleans(),
)
def test_recall_deeper_than_the_knn_lists_equals_the_definition(seed, n_gallery, self_mode):
    """Many classes of 1-3 items in noise: most queries' first match ranks far down, past the cap."""
    rng = np.random.default_rng(seed)
    classes = n_gallery // 2
    q, g = rng.normal(size=(12, 3)), rng.normal(size=(n_gallery, 3))
    # unit rows: the reference ranks by dot product
    q, g = ((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32) for x in (q, g))
    ql = rng.integers(0, classes, len(q))
    gl = np.concatenate(
        [ql, rng.integers(0, classes, n_gallery - len(q))]
    )  # each query has a match
    ks = (1, KNN_DEPTH_CAP - 1, KNN_DEPTH_CAP, KNN_DEPTH_CAP + 1, n_gallery - 3, 2 * n_gallery)
    if self_mode:
        got = retrieval_metrics(g, gl, ks=ks)
        want = reference_retrieval(g, gl, ks=ks)
    else:
        got = retrieval_metrics(q, ql, g, gl, ks=ks)
        want = reference_retrieval(q, ql, g, gl, ks=ks)
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    # the case reaches past the cap: some query's first match ranks below it
    assert got[f"recall@{KNN_DEPTH_CAP}"] < 1.0 or got["recall@1"] < 1.0


def test_a_single_class_gallery_error_names_the_gallerys_label():
    q = np.eye(2, 3, dtype=np.float32)
    with pytest.raises(
        ValueError, match=r"single class \(label [^)]*7\)+: retrieval metrics need at least two"
    ):
        retrieval_metrics(q, [0, 1], np.ones((3, 3)), [7, 7, 7])
    with pytest.raises(ValueError, match=r"single class \(label [^)]*'b'"):  # a gallery of one item
        retrieval_metrics(q, ["a", "b"], np.ones((1, 3)), ["b"])


def test_two_items_of_two_classes_have_no_positive_to_find():
    with pytest.raises(ValueError, match="no query has a same-class item.*use the same class ids"):
        retrieval_metrics(np.eye(2, 3), [0, 1])
