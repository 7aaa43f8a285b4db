"""Properties of the retrieval metrics that hold for any input (hypothesis draws the inputs).

The brute-force reference of conftest.py is the oracle; the other properties need none:
invariance to the gallery's order and to the scale of each embedding, Recall@K monotone in K,
MAP@R <= R-Precision <= Recall@R-ish bounds, and exact duplicates.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dml.metrics import retrieval_metrics
from tests.metrics.conftest import reference_retrieval

PROPERTY = settings(max_examples=25, deadline=None)


@st.composite
def labelled_sets(draw, continuous: bool):
    """[N, D] float32 embeddings with 2..5 classes. Grid: unit rows of entries +-1/sqrt(D) for
    D in 1, 4, 16, so every cosine is exact and ties and duplicates are everywhere; else normal."""
    n = draw(st.integers(4, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if continuous:
        x = rng.normal(size=(n, draw(st.integers(2, 6)))).astype(np.float32)
    else:
        dim = draw(st.sampled_from([1, 4, 16]))
        x = (rng.choice([-1.0, 1.0], size=(n, dim)) / np.sqrt(dim)).astype(np.float32)
    classes = draw(st.integers(2, 5))
    labels = rng.integers(0, classes, n)
    labels[:2] = [0, 1]  # at least two classes
    return x, labels


ks_lists = st.lists(st.integers(1, 50), min_size=1, max_size=4)


@PROPERTY
@given(
    data=labelled_sets(continuous=False), ks=ks_lists, backend=st.sampled_from(["torch", "faiss"])
)
def test_self_retrieval_equals_the_brute_force_reference(data, ks, backend):
    x, labels = data
    if np.bincount(labels).max() < 2:
        labels[2 % len(labels)] = labels[0]  # one query with a positive at least
    want = reference_retrieval(
        x / np.linalg.norm(x, axis=1, keepdims=True), labels, ks=sorted(set(ks))
    )
    got = retrieval_metrics(x, labels, ks=ks, backend=backend, chunk_size=7)
    assert got == pytest.approx(want, abs=1e-9)


@PROPERTY
@given(data=labelled_sets(continuous=False), ks=ks_lists, split=st.integers(1, 3))
def test_query_gallery_retrieval_equals_the_brute_force_reference(data, ks, split):
    x, labels = data
    cut = max(1, len(x) * split // 4)
    q, ql, g, gl = x[:cut], labels[:cut], x[cut:], labels[cut:]
    if len(np.unique(gl)) < 2 or not np.isin(ql, gl).any():
        return  # the metric rightly refuses these (tested in test_retrieval.py)
    want = reference_retrieval(q, ql, g, gl, ks=sorted(set(ks)))
    assert retrieval_metrics(q, ql, g, gl, ks=ks) == pytest.approx(want, abs=1e-9)


@PROPERTY
@given(data=labelled_sets(continuous=True), seed=st.integers(0, 1000))
def test_invariant_to_gallery_order_and_to_the_scale_of_each_embedding(data, seed):
    x, labels = data
    rng = np.random.default_rng(seed)
    cut = len(x) // 2
    q, ql, g, gl = x[:cut], labels[:cut], x[cut:], labels[cut:]
    if len(np.unique(gl)) < 2 or not np.isin(ql, gl).any():
        return
    ks = (1, 2, 4, 100)
    base = retrieval_metrics(q, ql, g, gl, ks=ks)
    order = rng.permutation(len(g))
    assert retrieval_metrics(q, ql, g[order], gl[order], ks=ks) == base
    # powers of two scale exactly, so even tied similarities stay tied
    scale = lambda a: a * np.exp2(rng.integers(-8, 9, size=(len(a), 1))).astype(np.float32)  # noqa: E731
    assert retrieval_metrics(scale(q), ql, scale(g), gl, ks=ks) == base
    # the query order only permutes per-query scores: means equal up to summation order
    qo = rng.permutation(len(q))
    assert retrieval_metrics(q[qo], ql[qo], g, gl, ks=ks) == pytest.approx(base, abs=1e-12)


@PROPERTY
@given(data=labelled_sets(continuous=False))
def test_recall_is_monotone_in_k_and_map_at_r_is_at_most_r_precision(data):
    x, labels = data
    if np.bincount(labels).max() < 2:
        labels[2 % len(labels)] = labels[0]
    ks = list(range(1, len(x) + 2))
    out = retrieval_metrics(x, labels, ks=ks)
    recalls = [out[f"recall@{k}"] for k in ks]
    assert all(a <= b for a, b in zip(recalls[:-1], recalls[1:], strict=True))
    assert recalls[-1] == 1.0  # K past the gallery: every scored query has found its positive
    assert 0.0 <= out["map@r"] <= out["r_precision"] <= 1.0
    assert out["r_precision"] <= recalls[-1]
    assert out["num_queries"] + out["queries_without_positive"] == len(x)
    assert out["num_queries"] == int((np.bincount(labels)[labels] > 1).sum())


@PROPERTY
@given(data=labelled_sets(continuous=True))
def test_an_exact_duplicate_of_every_item_is_its_first_match(data):
    x, labels = data
    # retrieval is by cosine: two rows pointing the same way (one a scaled copy of the other, as
    # hypothesis found: [0.84, 0.36] and [2.18, 0.94]) are duplicates too, a tie with the copy
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -1.0)
    assume(cosine.max() < 1.0 - 1e-5)
    twice_x, twice_labels = np.concatenate([x, x]), np.concatenate([labels, labels])
    out = retrieval_metrics(twice_x, twice_labels, ks=(1, 2))
    assert out["recall@1"] == 1.0 and out["queries_without_positive"] == 0
    # the duplicate is one of R positives at rank 1: MAP@R and R-Precision are at least 1/R
    r = np.bincount(twice_labels)[twice_labels] - 1
    assert out["r_precision"] >= np.mean(1 / r) - 1e-12


@PROPERTY
@given(data=labelled_sets(continuous=False), ks=ks_lists, split=st.integers(0, 3))
def test_recall_deeper_than_the_knn_lists_equals_the_reference(data, ks, split):
    """Recall@K past the kNN lists' depth (K > KNN_DEPTH_CAP, set to 1 here so that small sets
    reach it) counts the ranks before each query's best match over the whole gallery."""
    import dml.metrics.retrieval as retrieval

    x, labels = data
    if split == 0:  # self-retrieval
        q, ql, g, gl = x, labels, None, None
        if np.bincount(labels).max() < 2:
            labels[2 % len(labels)] = labels[0]
    else:
        cut = max(1, len(x) * split // 4)
        q, ql, g, gl = x[:cut], labels[:cut], x[cut:], labels[cut:]
        assume(len(np.unique(gl)) >= 2 and np.isin(ql, gl).any())
    want = reference_retrieval(q, ql, g, gl, ks=sorted(set(ks)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retrieval, "KNN_DEPTH_CAP", 1)
        assert retrieval_metrics(q, ql, g, gl, ks=ks) == pytest.approx(want, abs=1e-9)
